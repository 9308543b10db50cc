"""The change-terms pass as a Dagster asset: one partition per repository, incremental.

Reading diffs costs far more than reading commit metadata (``git log -p`` versus
``--numstat``), so it is its own asset: a refresh reads only commits it has not
read, and the serving index picks the terms up at its next publish. After each
run the PR groups of every repository are published for readers
(``$SYMBIOTIC_HOME/published/search-changes``), which group search results by change.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from symbiotic_assets.core.config import RepositorySpec
from symbiotic_assets.core.resources import SettingsResource, WarehouseResource
from symbiotic_assets.core.warehouse import WAREHOUSE_POOL
from symbiotic_assets.git.assets import COMMITS, repositories_partitions, repository_for_partition

CHANGE_TERMS = dg.AssetKey(["search", "change_terms"])


def refresh_changes(
    con: Any,
    spec: RepositorySpec,
    published_dir: Path,
    progress: Callable[[int, int], None] | None = None,
    publish: bool = True,
) -> dict[str, Any]:
    """Read new commits' changes of ``spec`` and republish the PR groups if they changed.

    With ``publish=False`` the groups are not republished; the metadata says whether
    they should be (``groups_stale``), so a batch over many repositories publishes
    them once at its end instead of once per repository.
    Shared by the asset and by ``symbiotic run``'s batch refresh (``orchestration/refresh_changed.py``),
    so both leave the same tables; returns the materialization metadata. The groups go
    under ``published_dir/search-changes``: the caller passes the ``published_dir`` of
    the settings it was handed.
    """
    from symbiotic_assets.core.publish import NotPublishedError
    from symbiotic_assets.git.repository import GitRepository
    from symbiotic_assets.search.change_terms import _current, publish_groups, refresh_change_terms

    repo = GitRepository.open(spec.name, spec.path)
    result = refresh_change_terms(con, repo, spec.name, progress=progress)
    root = published_dir / "search-changes"
    try:
        version: str | None = _current(root)
        stale = result.groups > 0 or result.reused_group_rows > 0  # copied ones too
    except NotPublishedError:
        stale = True
    if stale and publish:
        version = publish_groups(con, root)
    elif stale:
        version = None
    rate = result.commits / result.seconds if result.seconds > 0 else 0.0
    return {
        "repository": spec.name,
        "commits_read": result.commits,
        "pr_groups_found": result.groups,
        "reused_commits": result.reused_commits,  # copied from repositories sharing history
        "reused_group_rows": result.reused_group_rows,
        "seconds": round(result.seconds, 2),
        "commits_per_second": round(rate, 1),
        "groups_version": version,
        "groups_stale": bool(stale and not publish),
    }


@dg.asset(
    key=CHANGE_TERMS,
    deps=[COMMITS],
    partitions_def=repositories_partitions,
    group_name="search",
    pool=WAREHOUSE_POOL,
    description="Per commit: functions/classes whose hunks changed (git hunk headers) and "
    "identifiers added or removed; per pull request: number, branch, title and its commits. "
    "Incremental: only commits not read yet.",
)
def change_terms(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, settings: SettingsResource
) -> dg.MaterializeResult:
    repository = context.partition_key
    current = settings.get_settings()
    spec = repository_for_partition(repository, current)

    def progress(done: int, total: int) -> None:
        context.log.info(f"{repository}: changes of {done}/{total} commits read")

    with warehouse.connect() as con:
        metadata = refresh_changes(con, spec, current.published_dir, progress)
    return dg.MaterializeResult(metadata=metadata)
