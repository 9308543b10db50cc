"""Memory assets: load new events from the memory store into the warehouse.

A sensor watches the store's high-water marks and requests a load when new rows
arrive; the load itself is incremental and idempotent (see ``loader.py``).
"""

from collections.abc import Iterator

import dagster as dg

from symbiotic_assets.config import load_settings
from symbiotic_assets.memory.loader import load_memory
from symbiotic_assets.warehouse import WAREHOUSE_POOL, WarehouseResource

GROUP = "memory"
FIX_ATTEMPTS = dg.AssetKey(["memory", "fix_attempts"])
FEEDBACK = dg.AssetKey(["memory", "recommendation_feedback"])
EVENTS = dg.AssetKey(["memory", "events"])


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
def memory_tables(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> Iterator:
    store = load_settings().memory_store
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
