"""Memory assets: load new events from the memory store, then learn from them.

A sensor watches the store's high-water marks and requests a load when new rows
arrive; the load itself is incremental and idempotent (see ``loader.py``).

The learning assets (job ``memory_learn``) are thin: they read the warehouse,
call the pure functions of ``learning.py`` and write the result back:
``memory/fix_attempt_embeddings`` (new attempts only), ``memory/strategy_weights``
(replay, calibration, pattern weights; state kept in ``memory.recommender_state``
so each run continues from the last) and ``memory/recommender_index`` (the files the
API reads, published atomically). Strategy effectiveness is a dbt mart
(``marts.fct_strategy_effectiveness``), defined there only.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from symbiotic_assets.core.config import Settings
from symbiotic_assets.core.resources import EmbedderResource, SettingsResource, WarehouseResource
from symbiotic_assets.core.schema import DIMENSION, ensure_learning_schema
from symbiotic_assets.core.vectors import APPROXIMATE_ABOVE, kind_for, vector_array, vectors_of
from symbiotic_assets.core.warehouse import WAREHOUSE_POOL
from symbiotic_assets.memory.loader import load_memory

GROUP = "memory"
FIX_ATTEMPTS = dg.AssetKey(["memory", "fix_attempts"])
FEEDBACK = dg.AssetKey(["memory", "recommendation_feedback"])
EVENTS = dg.AssetKey(["memory", "events"])
FIX_ATTEMPT_EMBEDDINGS = dg.AssetKey(["memory", "fix_attempt_embeddings"])
STRATEGY_WEIGHTS = dg.AssetKey(["memory", "strategy_weights"])
RECOMMENDER_INDEX = dg.AssetKey(["memory", "recommender_index"])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            FIX_ATTEMPTS,
            description="Every fix attempt recorded in the memory store "
            "(corrections applied, deletions flagged), UTC timestamps.",
        ),
        dg.AssetSpec(
            FEEDBACK,
            description="Recommendation feedback: shown, followed, outcome, "
            "the confidence that was given.",
        ),
        dg.AssetSpec(
            EVENTS,
            description="Generic events (sessions, skill invocations, searches, "
            "clicks) with their JSON payloads.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec("no_duplicate_attempt_ids", asset=FIX_ATTEMPTS),
        dg.AssetCheckSpec("no_duplicate_event_ids", asset=EVENTS),
    ],
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    can_subset=False,
)
def memory_tables(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, settings: SettingsResource
) -> Iterator:
    store = settings.get_settings().memory_store
    with warehouse.connect() as con:
        result = load_memory(store, con)
        totals = con.execute(
            "SELECT (SELECT count(*) FROM memory.fix_attempts), "
            "(SELECT count(*) FROM memory.recommendation_feedback), (SELECT count(*) FROM memory.events)"
        ).fetchone()
        dup_attempts = con.execute(
            "SELECT count(*) FROM (SELECT id FROM memory.fix_attempts GROUP BY id HAVING count(*) > 1)"
        ).fetchone()
        dup_events = con.execute(
            "SELECT count(*) FROM (SELECT id FROM memory.events GROUP BY id HAVING count(*) > 1)"
        ).fetchone()
    context.log.info(
        f"loaded {result.fix_attempts} fix attempts, {result.corrected_attempts} corrected, "
        f"{result.feedback} feedback rows, {result.events} events from {store}"
    )
    attempts, feedback, events = totals if totals else (0, 0, 0)
    yield dg.MaterializeResult(asset_key=FIX_ATTEMPTS, metadata={
        "new_rows": result.fix_attempts, "corrected_rows": result.corrected_attempts,
        "total_rows": attempts})  # fmt: skip
    yield dg.MaterializeResult(
        asset_key=FEEDBACK, metadata={"new_rows": result.feedback, "total_rows": feedback}
    )
    yield dg.MaterializeResult(asset_key=EVENTS, metadata={
        "new_rows": result.events, "total_rows": events,
        "new_by_type": ", ".join(f"{k}={v}" for k, v in sorted(result.events_by_type.items()))})  # fmt: skip
    yield dg.AssetCheckResult(check_name="no_duplicate_attempt_ids", asset_key=FIX_ATTEMPTS,
                              passed=not (dup_attempts and dup_attempts[0]))  # fmt: skip
    yield dg.AssetCheckResult(check_name="no_duplicate_event_ids", asset_key=EVENTS,
                              passed=not (dup_events and dup_events[0]))  # fmt: skip


# --------------------------------------------------------------------------- learning


def recommender_root(settings: Settings) -> Path:
    """Where the serving artifacts are published: ``<published_dir>/recommender`` of the
    settings the asset was handed (its ``settings`` resource)."""
    return settings.published_dir / "recommender"


def _ensure_learning_schema(con: Any) -> None:
    ensure_learning_schema(con)


_ATTEMPTS_WITH_VECTORS = """
    SELECT a.id, a.issue_type, a.message, a.file_path, a.stage, a.agent, a.strategy, a.success,
           epoch(a."timestamp"), e.vector
    FROM memory.fix_attempts a
    JOIN memory.fix_attempt_embeddings e ON e.attempt_id = a.id AND e.model = ?
    WHERE NOT a.deleted
    ORDER BY a."timestamp", a.id
"""


def _read_history(con: Any, model: str) -> tuple[list[dict[str, Any]], Any]:
    """Non-deleted attempts that have a vector for ``model``, time order, and their vectors."""

    table = con.execute(_ATTEMPTS_WITH_VECTORS, [model]).fetch_arrow_table()
    names = ("id", "issue_type", "message", "file_path", "stage", "agent", "strategy")
    columns = [table.column(i).to_pylist() for i in range(9)]
    records = [
        dict(zip(names, r[:7], strict=True)) | {"success": bool(r[7]), "timestamp": float(r[8])}
        for r in zip(*columns, strict=True)
    ]
    vectors = vectors_of(table.column(9), DIMENSION)
    return records, vectors


def _latest_state(con: Any) -> str | None:
    row = con.execute(
        "SELECT state_json FROM memory.recommender_state ORDER BY version DESC LIMIT 1"
    ).fetchone()
    return str(row[0]) if row else None


@dg.asset(
    key=FIX_ATTEMPT_EMBEDDINGS,
    deps=[FIX_ATTEMPTS],
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    check_specs=[dg.AssetCheckSpec("unit_vectors_384", asset=FIX_ATTEMPT_EMBEDDINGS)],
    description="One 384-dim unit vector per fix attempt and model, of the documented issue text "
    "(type, message, path words, stage). Incremental: only attempts without a vector for the "
    "current model (or corrected since) are embedded; equal texts come from a content-hash cache.",
)
def fix_attempt_embeddings(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, embedder: EmbedderResource
) -> Iterator:
    import pyarrow as pa

    from symbiotic_assets.core.embedding import VectorCacheTable, cache_key, issue_text

    model = embedder.get_embedder()
    model_id = model.model_id  # names the vectors; does not load the model
    calls_before = model.model_calls
    with warehouse.connect() as con:
        _ensure_learning_schema(con)
        pending = con.execute(
            """
            SELECT a.id, a.issue_type, a.message, a.file_path, a.stage
            FROM memory.fix_attempts a
            LEFT JOIN memory.fix_attempt_embeddings e ON e.attempt_id = a.id AND e.model = ?
            WHERE NOT a.deleted
              AND (e.attempt_id IS NULL OR a.updated_at > e.embedded_at)
            ORDER BY a.id
            """,
            [model_id],
        ).fetchall()
        texts = [issue_text(r[1], r[2], r[3], r[4]) for r in pending]
        # A corrected attempt whose text did not change keeps its vector.
        known = dict(
            con.execute(
                "SELECT attempt_id, text_sha256 FROM memory.fix_attempt_embeddings "
                "WHERE model = ? AND attempt_id IN (SELECT unnest(?::BIGINT[]))",
                [model_id, [r[0] for r in pending]],
            ).fetchall()
        )
        keys = [cache_key(t, model_id) for t in texts]
        todo = [j for j, r in enumerate(pending) if known.get(r[0]) != keys[j]]
        touched = [r[0] for j, r in enumerate(pending) if known.get(r[0]) == keys[j]]
        if touched:
            con.execute(
                "UPDATE memory.fix_attempt_embeddings SET embedded_at = (now() AT TIME ZONE 'UTC') "
                "WHERE model = ? AND attempt_id IN (SELECT unnest(?::BIGINT[]))",
                [model_id, touched],
            )
        if todo:
            cache = VectorCacheTable(con, "memory.embedding_cache", dim=DIMENSION)
            vectors = model.embed_many(
                [texts[j] for j in todo], batch_size=embedder.batch_size, persistent=cache
            )
            if vectors.shape[1] != DIMENSION:
                raise ValueError(
                    f"embedder {model_id!r} gives {vectors.shape[1]}-dim vectors; "
                    f"memory.fix_attempt_embeddings holds {DIMENSION}"
                )
            frame = pa.table(
                {
                    "attempt_id": pa.array([pending[j][0] for j in todo]),
                    "text_sha256": pa.array([keys[j] for j in todo], pa.string()),
                    "vector": vector_array(vectors),
                }
            )
            con.register("_memory_new_vectors", frame)
            try:
                con.execute(
                    "DELETE FROM memory.fix_attempt_embeddings WHERE model = ? "
                    "AND attempt_id IN (SELECT attempt_id FROM _memory_new_vectors)",
                    [model_id],
                )
                con.execute(
                    f"INSERT INTO memory.fix_attempt_embeddings SELECT attempt_id, ?, text_sha256, "
                    f"vector::FLOAT[{DIMENSION}], (now() AT TIME ZONE 'UTC') FROM _memory_new_vectors",
                    [model_id],
                )
            finally:
                con.unregister("_memory_new_vectors")
        total, bad = con.execute(
            f"""
            SELECT count(*), count(*) FILTER (WHERE len(vector) <> {DIMENSION}
                   OR abs(list_dot_product(vector, vector) - 1) > 1e-3)
            FROM memory.fix_attempt_embeddings WHERE model = ?
            """,
            [model_id],
        ).fetchone() or (0, 0)
    model_calls = model.model_calls - calls_before
    context.log.info(
        f"{len(pending)} attempts without a current vector, {len(todo)} embedded "
        f"({model_calls} through the model, the rest from the cache); {total} vectors for {model_id}"
    )
    yield dg.MaterializeResult(
        metadata={
            "model": model_id,
            "new_vectors": len(todo),
            "model_calls": model_calls,
            "vectors": int(total),
        }
    )
    yield dg.AssetCheckResult(
        check_name="unit_vectors_384", passed=int(bad) == 0, metadata={"bad_vectors": int(bad)}
    )


STATE_VERSIONS_KEPT = 30


def prune_recommender_state(con: duckdb.DuckDBPyConnection, keep: int = STATE_VERSIONS_KEPT) -> int:
    """Drop all but the newest ``keep`` learned states; returns how many rows went.

    Each state is a full snapshot (every pattern weight, the calibrator, feedback
    counts) derived from the memory store, so older ones are only history: the
    next run reads the newest, and the store can rebuild any of them.
    """
    if keep < 1:
        raise ValueError(f"keep={keep}: at least the newest state must stay")
    before = _count(con, "memory.recommender_state")
    con.execute(
        "DELETE FROM memory.recommender_state WHERE version <= "
        "(SELECT max(version) FROM memory.recommender_state) - ?",
        [keep],
    )
    return before - _count(con, "memory.recommender_state")


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0


INPUT_FINGERPRINT = "input_fingerprint"


def _learning_inputs(con: Any, model_id: str) -> str:
    """Counts and high-water marks of everything learning reads: equal means same result."""
    import hashlib

    row = con.execute(
        """
        SELECT (SELECT count(*) FROM memory.fix_attempts), (SELECT max(id) FROM memory.fix_attempts),
               (SELECT max(updated_at) FROM memory.fix_attempts),
               (SELECT count(*) FILTER (WHERE deleted) FROM memory.fix_attempts),
               (SELECT count(*) FROM memory.recommendation_feedback),
               (SELECT max(id) FROM memory.recommendation_feedback),
               (SELECT count(*) FROM memory.fix_attempt_embeddings WHERE model = $m),
               (SELECT max(embedded_at) FROM memory.fix_attempt_embeddings WHERE model = $m)
        """,
        {"m": model_id},
    ).fetchone()
    return hashlib.sha256(f"{model_id}\0{row!r}".encode()).hexdigest()


def _last_fingerprint(context: dg.AssetExecutionContext, key: dg.AssetKey) -> str | None:
    """The input fingerprint the asset's last materialization recorded, if any."""
    event = context.instance.get_latest_materialization_event(key)
    mat = event.asset_materialization if event is not None else None
    value = mat.metadata.get(INPUT_FINGERPRINT) if mat is not None else None
    return str(value.value) if value is not None else None


class LearnConfig(dg.Config):
    """``force``: train even when nothing the state is learned from changed today."""

    force: bool = False


@dg.asset(
    key=STRATEGY_WEIGHTS,
    deps=[FIX_ATTEMPT_EMBEDDINGS, FEEDBACK],
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    description="The recommender's learned state: per-pattern weights (issue_type|agent:strategy) "
    "strengthened by successes and weakened by failures since the last run, an isotonic "
    "calibrator fitted on the history replayed in time order, and feedback counts. One new row "
    "of memory.recommender_state per run (the newest 30 are kept); the next run continues "
    "from it.",
)
def strategy_weights(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    embedder: EmbedderResource,
    config: LearnConfig,
) -> dg.MaterializeResult:
    import datetime as dt

    from symbiotic_assets.memory.learning import (
        LearnedState,
        feedback_stats,
        learn,
        records_from_rows,
    )

    model_id = embedder.get_embedder().model_id
    with warehouse.connect() as con:
        _ensure_learning_schema(con)
        # Recency weights move with the day, so a day without new outcomes still trains once.
        fingerprint = f"{_learning_inputs(con, model_id)}:{dt.datetime.now(dt.UTC).date()}"
        previous_json = _latest_state(con)
        unchanged = _last_fingerprint(context, STRATEGY_WEIGHTS) == fingerprint
        if previous_json and unchanged and not config.force:
            context.log.info("no new attempt, correction, vector or feedback today: state kept")
            return dg.MaterializeResult(
                metadata={
                    "skipped": True,
                    INPUT_FINGERPRINT: fingerprint,
                    "version": LearnedState.from_json(previous_json).version,
                }
            )
        rows, vectors = _read_history(con, model_id)
        cur = con.execute(
            "SELECT agent, strategy, shown, followed, outcome FROM memory.recommendation_feedback"
        )
        names = [d[0] for d in cur.description or []]
        feedback = feedback_stats(dict(zip(names, r, strict=True)) for r in cur.fetchall())
    previous = LearnedState.from_json(previous_json) if previous_json else None
    learned, metrics = learn(records_from_rows(rows), vectors, previous, feedback)
    learned.model = model_id
    with warehouse.connect() as con:
        _ensure_learning_schema(con)
        con.execute(
            "INSERT INTO memory.recommender_state VALUES (?, ?::TIMESTAMPTZ::TIMESTAMP, ?, ?, ?, ?)",
            [
                learned.version,
                learned.trained_at,
                model_id,
                learned.last_attempt_id,
                len(learned.state.pattern_weights),
                learned.to_json(),
            ],
        )
        pruned = prune_recommender_state(con)
    weights = learned.state.pattern_weights
    strongest = sorted(weights.items(), key=lambda kv: -kv[1])[:5]
    weakest = sorted(weights.items(), key=lambda kv: kv[1])[:5]
    table = "| pattern | weight |\n|---|---|\n" + "\n".join(
        f"| {k} | {v:.3f} |" for k, v in [*strongest, *weakest]
    )
    context.log.info(
        f"state v{learned.version}: replayed {metrics.replayed} attempts, {len(weights)} patterns, "
        f"hit rate {metrics.hit_rate:.3f}, ECE {metrics.ece}, {metrics.calibration_pairs} "
        f"calibration pairs, {sum(f.shown for f in feedback.values())} feedback rows counted"
    )
    return dg.MaterializeResult(
        metadata={
            "version": learned.version,
            "states_pruned": pruned,
            "patterns": len(weights),
            "replayed": metrics.replayed,
            "hit_rate": metrics.hit_rate,
            "calibration_ece": metrics.ece if metrics.ece is not None else float("nan"),
            "calibration_pairs": metrics.calibration_pairs,
            "success_when_followed": metrics.success_when_followed,
            "calibrated": learned.state.calibrator.fitted,
            "last_attempt_id": learned.last_attempt_id,
            "feedback_candidates": len(feedback),
            "weights": dg.MetadataValue.md(table),
            "skipped": False,
            INPUT_FINGERPRINT: fingerprint,
        }
    )


@dg.asset(
    key=RECOMMENDER_INDEX,
    deps=[FIX_ATTEMPT_EMBEDDINGS, STRATEGY_WEIGHTS],
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    description="The published recommender (vectors .npy, attempt columns, learned state JSON) "
    "under $SYMBIOTIC_HOME/published/recommender, swapped in atomically; the API reads only this.",
)
def recommender_index(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    embedder: EmbedderResource,
    settings: SettingsResource,
) -> dg.MaterializeResult:
    from symbiotic_assets.memory.learning import LearnedState
    from symbiotic_assets.memory.serving import (
        RecommenderNotPublishedError,
        current_version,
        publish,
    )

    model_id = embedder.get_embedder().model_id
    root = recommender_root(settings.get_settings())
    with warehouse.connect() as con:
        _ensure_learning_schema(con)
        state_json = _latest_state(con)
        state_row = con.execute("SELECT max(version) FROM memory.recommender_state").fetchone()
        fingerprint = (
            f"{_learning_inputs(con, model_id)}:state={state_row[0] if state_row else None}"
        )
        if _last_fingerprint(context, RECOMMENDER_INDEX) == fingerprint:
            try:
                published = current_version(root)
            except RecommenderNotPublishedError:
                published = ""
            if published:
                context.log.info(f"attempts, vectors and state unchanged: {published} stays")
                return dg.MaterializeResult(
                    metadata={"skipped": True, INPUT_FINGERPRINT: fingerprint,
                              "version": published, "path": str(root)}
                )  # fmt: skip
        rows, vectors = _read_history(con, model_id)
    learned = LearnedState.from_json(state_json) if state_json else LearnedState(model=model_id)
    learned.model = model_id
    version = publish(
        root,
        vectors=vectors,
        attempt_ids=[int(r["id"]) for r in rows],
        issue_types=[str(r["issue_type"]) for r in rows],
        agent_strategies=[f"{r['agent']}:{r['strategy']}" for r in rows],
        success=[bool(r["success"]) for r in rows],
        timestamps=[float(r["timestamp"]) for r in rows],
        messages=[str(r["message"] or "") for r in rows],
        file_paths=[str(r["file_path"] or "") for r in rows],
        state_json=learned.to_json(),
        model=model_id,
    )
    context.log.info(
        f"published recommender {version}: {len(rows)} attempts, state v{learned.version}, {model_id}"
    )
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "attempts": len(rows),
            "state_version": learned.version,
            "model": model_id,
            "index": "exact" if len(rows) <= APPROXIMATE_ABOVE else kind_for(DIMENSION),
            "path": str(root),
            "skipped": False,
            INPUT_FINGERPRINT: fingerprint,
        }
    )
