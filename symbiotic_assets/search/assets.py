"""Search assets: commit vectors per repository, learned ranker weights, the serving index.

``search/commit_embeddings`` (per repository partition) embeds only commits
without a vector for the current model. ``search/ranker_weights`` learns from the
searches and clicks in the memory store, scoring them against the index that was
published when they happened (the one people saw), and also keeps the click
memory (per similar-query boosts of clicked commits, ``search/clicks.py``). ``search/serving_index``
reads vectors, metadata and the latest weights from the warehouse and publishes
them as files; readers use only those files.
"""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from symbiotic_assets.core.config import Settings
from symbiotic_assets.core.resources import EmbedderResource, SettingsResource, WarehouseResource
from symbiotic_assets.core.warehouse import WAREHOUSE_POOL
from symbiotic_assets.git.assets import COMMIT_FILES, COMMITS, repositories_partitions
from symbiotic_assets.search.change_assets import CHANGE_TERMS

GROUP = "search"
COMMIT_EMBEDDINGS = dg.AssetKey(["search", "commit_embeddings"])
RANKER_WEIGHTS = dg.AssetKey(["search", "ranker_weights"])
SERVING_INDEX = dg.AssetKey(["search", "serving_index"])


def search_root(settings: Settings) -> Path:
    """Where the serving index is published: ``<published_dir>/search``."""
    return settings.published_dir / "search"


@dg.asset(
    key=COMMIT_EMBEDDINGS,
    deps=[COMMITS, COMMIT_FILES],
    partitions_def=repositories_partitions,
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    check_specs=[dg.AssetCheckSpec("unit_vectors_384", asset=COMMIT_EMBEDDINGS)],
    description="One 384-dim unit vector per reachable commit and model (commit text: subject, "
    "body, touched paths in words). Incremental: only commits without a vector are embedded.",
)
def commit_embeddings(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    search_embedder: EmbedderResource,
) -> Iterator:
    from symbiotic_assets.search.commit_embeddings import (
        embed_repository,
        ensure_search_schema,
        model_key,
    )

    repository = context.partition_key
    embedder = search_embedder.get_embedder()

    def progress(done: int, total: int) -> None:
        context.log.info(f"{repository}: {done}/{total} commits embedded")

    from symbiotic_assets.git.shared_history import reuse_commit_vectors

    key = model_key(embedder)
    with warehouse.connect() as con:
        ensure_search_schema(con)
        # the same commit in a fork or clone already has its vector: copied, not embedded
        reused = reuse_commit_vectors(con, repository, key)
        result = embed_repository(
            con, repository, embedder, batch_size=search_embedder.batch_size, progress=progress
        )
        bad = con.execute(
            "SELECT count(*) FROM search.commit_embeddings WHERE repository = ? AND model = ? "
            "AND (len(vector) <> 384 OR abs(list_dot_product(vector, vector) - 1) > 1e-3)",
            [repository, key],
        ).fetchone()
    context.log.info(
        f"{repository}: {result.pending} commits without a vector, {result.model_calls} sent to "
        f"the model (the rest from the content-hash cache); {result.total} vectors stored"
    )
    yield dg.MaterializeResult(
        metadata={
            "repository": repository,
            "model": key,
            "new_vectors": result.embedded + reused,
            "reused_vectors": reused,
            "model_calls": result.model_calls,
            "vectors": result.total,
            # nothing was pending: no model call, no write (a no-op refresh of the partition)
            "skipped": result.pending == 0 and reused == 0,
        }
    )
    n_bad = int(bad[0]) if bad else 0
    yield dg.AssetCheckResult(
        check_name="unit_vectors_384", passed=n_bad == 0, metadata={"bad_vectors": n_bad}
    )


@dg.asset(
    key=RANKER_WEIGHTS,
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    description="Ranking weights learned from recorded searches and clicks (pairwise logistic "
    "regression pulled toward the default weights; the default weights when nobody clicked yet) "
    "and the click memory: clicked and skipped commits per past query, boosting the clicked "
    "commits for new queries similar to it.",
)
def ranker_weights(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    search_embedder: EmbedderResource,
    settings: SettingsResource,
) -> dg.MaterializeResult:
    from symbiotic_assets.events.store import list_events
    from symbiotic_assets.search.change_terms import history_queries
    from symbiotic_assets.search.clicks import learn_click_model, records_from_logged
    from symbiotic_assets.search.commit_embeddings import ensure_search_schema
    from symbiotic_assets.search.index import IndexNotPublishedError, load_published
    from symbiotic_assets.search.ranker import (
        MIN_HISTORY_PRS,
        HistoryQuery,
        RankerWeights,
        features_for_logged,
        join_clicks,
        learn_from_history,
        learn_weights,
    )

    searches = [e.parsed() for e in list_events("search", limit=None)]
    clicks = [e.parsed() for e in list_events("search_click", limit=None)]
    logged = join_clicks(searches, clicks)
    weights = RankerWeights()
    note = "default weights"
    try:
        index = load_published(search_root(settings.get_settings()))
    except IndexNotPublishedError:
        index = None
        note = "no index published yet to learn against: default weights"
    if index is not None:
        # Before any click: merged PRs pair a title with the commits it brought in.
        with warehouse.connect() as con:
            history = [HistoryQuery(t, m) for _, t, m in history_queries(con)]
        if len(history) >= MIN_HISTORY_PRS:
            embedder = search_embedder.get_embedder()
            weights = learn_from_history(index, history, embedder.embed_many)
            note = f"learned from {len(history)} merged PRs ({weights.stats.get('pairs')} pairs)"
        if any(s.clicked for s in logged):
            embedder = search_embedder.get_embedder()
            examples = features_for_logged(index, logged, lambda qs: embedder.embed_many(qs))
            weights = learn_weights(examples, prior=weights)
            note += f"; refined by {len(examples)} searches with clicks"
    # The embedder is only loaded when there is a clicked query to embed.
    click_model = learn_click_model(
        records_from_logged(logged), lambda qs: search_embedder.get_embedder().embed_many(qs)
    )
    context.log.info(f"ranker weights: {note}; {len(searches)} searches, {len(clicks)} clicks")
    with warehouse.connect() as con:
        ensure_search_schema(con)
        con.execute(
            "INSERT INTO search.click_model VALUES (now()::TIMESTAMP, ?, ?)",
            [click_model.to_json(), click_model.size],
        )
        con.execute(
            "INSERT INTO search.ranker_weights VALUES (now()::TIMESTAMP, ?, ?, ?, ?, ?)",
            [
                weights.source,
                weights.to_json(),
                len(searches),
                len(clicks),
                int(weights.stats.get("pairs", 0)),
            ],
        )
    table = "| feature | weight |\n|---|---|\n" + "\n".join(
        f"| {f} | {w:.3f} |" for f, w in weights.weights.items()
    )
    return dg.MaterializeResult(
        metadata={
            "source": weights.source,
            "searches": len(searches),
            "clicks": len(clicks),
            "stats": dg.MetadataValue.json(weights.stats),
            "weights": dg.MetadataValue.md(table),
            "click_memory_queries": click_model.size,
            "click_memory_commits": len(set(click_model.entry_hash)),
        }
    )


@dg.asset(
    key=SERVING_INDEX,
    deps=[COMMIT_EMBEDDINGS, RANKER_WEIGHTS, CHANGE_TERMS],
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    description="The published search index (vectors .npy, BM25, commit metadata, ranker "
    "weights, click memory) under $SYMBIOTIC_HOME/published/search, swapped in atomically.",
)
def serving_index(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    search_embedder: EmbedderResource,
    settings: SettingsResource,
) -> dg.MaterializeResult:
    from symbiotic_assets.search.clicks import ClickModel
    from symbiotic_assets.search.commit_embeddings import (
        ensure_search_schema,
        model_key,
        publish_from_warehouse,
    )
    from symbiotic_assets.search.ranker import RankerWeights

    # The model key only names the vectors; the embedder loads its model lazily.
    key = model_key(search_embedder.get_embedder())
    root = search_root(settings.get_settings())
    with warehouse.connect() as con:
        ensure_search_schema(con)
        row = con.execute(
            "SELECT weights_json FROM search.ranker_weights ORDER BY trained_at DESC LIMIT 1"
        ).fetchone()
        click_row = con.execute(
            "SELECT model_json FROM search.click_model ORDER BY trained_at DESC LIMIT 1"
        ).fetchone()
        weights = RankerWeights.from_json(row[0]) if row else RankerWeights()
        clicks = ClickModel.from_json(click_row[0]) if click_row else None
        result = publish_from_warehouse(con, root, key, weights=weights, clicks=clicks)
    if result.changed:
        context.log.info(f"published search index {result.version}: {result.commits} commits")
    else:
        context.log.info(f"search index {result.version} is current: nothing changed, no publish")
    return dg.MaterializeResult(
        metadata={
            "version": result.version,
            "published": result.changed,
            "commits": result.commits,
            "repositories": dg.MetadataValue.json(result.repositories),
            "model": key,
            "ranker": weights.source,
            "click_memory_queries": clicks.size if clicks else 0,
            "ann": result.ann,
            "path": str(root),
        }
    )
