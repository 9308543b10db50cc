"""Memory domain: load events, and (with the embedder) learn from them."""

import json
from pathlib import Path

import dagster as dg

from symbiotic_assets.config import load_settings
from symbiotic_assets.memory.assets import memory_tables

memory_load_job = dg.define_asset_job(
    "memory_load",
    selection=dg.AssetSelection.assets(memory_tables),
    description="Copy new fix attempts, feedback and events from the memory store into the warehouse.",
)


def _store_marks(path: Path) -> dict[str, int]:
    from symbiotic_assets.memory.store import MemoryStore

    with MemoryStore(path) as store:
        return {t: store.max_id(t) for t in ("fix_attempts", "fix_attempt_corrections",
                                             "recommendation_feedback", "events")}  # fmt: skip


@dg.sensor(
    job=memory_load_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a memory load when the memory store has rows the last load did not see.",
)
def memory_events_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    store = load_settings().memory_store
    if not store.exists():
        return dg.SensorResult(skip_reason=f"no memory store yet at {store}")
    marks = _store_marks(store)
    previous = json.loads(context.cursor) if context.cursor else {}
    if marks == previous:
        return dg.SensorResult(skip_reason="no new memory events")
    key = ":".join(f"{k}={v}" for k, v in sorted(marks.items()))
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=key)], cursor=json.dumps(marks))


defs = dg.Definitions(
    assets=[memory_tables], jobs=[memory_load_job], sensors=[memory_events_sensor]
)
