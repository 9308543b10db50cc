"""Everything about search in one place: assets, jobs, schedules, the embedder resource.

The ``warehouse`` resource comes from the top-level code location. Importing this
module does not import torch: the embedder loads on the first asset that needs it.
"""

import dagster as dg

from symbiotic_assets.core.resources import EmbedderResource, settings_resource
from symbiotic_assets.git.assets import repositories_partitions
from symbiotic_assets.search.assets import (
    COMMIT_EMBEDDINGS,
    RANKER_WEIGHTS,
    SERVING_INDEX,
    commit_embeddings,
    ranker_weights,
    serving_index,
)
from symbiotic_assets.search.change_assets import CHANGE_TERMS, change_terms

search_embed_job = dg.define_asset_job(
    "search_embed",
    selection=dg.AssetSelection.assets(COMMIT_EMBEDDINGS, CHANGE_TERMS),
    description="Embed the commits of one repository that have no vector yet, and read the "
    "changes (functions, identifiers, PR groups) of commits not read yet.",
)
search_publish_job = dg.define_asset_job(
    "search_publish",
    selection=dg.AssetSelection.assets(RANKER_WEIGHTS, SERVING_INDEX),
    description="Learn ranking weights from clicks and publish the serving index.",
)


@dg.schedule(
    job=search_embed_job,
    cron_schedule="20 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly, after the git refresh: embed new commits of every repository.",
)
def hourly_search_embed(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    keys = context.instance.get_dynamic_partitions(repositories_partitions.name or "")
    stamp = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else ""
    return [dg.RunRequest(partition_key=k, run_key=f"search-embed:{k}:{stamp}") for k in keys]


hourly_search_publish = dg.ScheduleDefinition(
    job=search_publish_job,
    cron_schedule="45 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: retrain the ranker on clicks and publish the index with new commits.",
)

defs = dg.Definitions(
    assets=[commit_embeddings, change_terms, ranker_weights, serving_index],
    jobs=[search_embed_job, search_publish_job],
    schedules=[hourly_search_embed, hourly_search_publish],
    resources={"search_embedder": EmbedderResource(settings=settings_resource)},
)
