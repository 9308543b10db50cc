"""Memory domain: load events, and (with the embedder) learn from them.

``memory_load`` copies new store rows into the warehouse when the store sensor
sees them; ``memory_learn`` (embeddings -> strategy weights ->
published recommender) runs after each successful load (``memory_learn_sensor``)
and daily (``daily_memory_learn``, the scheduled retraining). The embedder is
registered as the ``embedder`` resource; importing this module does not import
torch or onnxruntime: the model loads on the first asset that embeds.
"""

import json
from pathlib import Path

import dagster as dg

from symbiotic_assets.core.resources import EmbedderResource, SettingsResource, settings_resource
from symbiotic_assets.memory.assets import (
    FEEDBACK,
    FIX_ATTEMPTS,
    fix_attempt_embeddings,
    memory_tables,
    recommender_index,
    strategy_weights,
)

memory_load_job = dg.define_asset_job(
    "memory_load",
    selection=dg.AssetSelection.assets(memory_tables),
    description="Copy new fix attempts, feedback and events from the memory store into the warehouse.",
)

memory_learn_job = dg.define_asset_job(
    "memory_learn",
    selection=dg.AssetSelection.assets(fix_attempt_embeddings, strategy_weights, recommender_index),
    description="Embed new fix attempts, update strategy weights and calibration from new "
    "outcomes, publish the recommender.",
)


def _store_marks(path: Path) -> dict[str, int]:
    from symbiotic_assets.events.store import MemoryStore

    with MemoryStore(path) as store:
        return {t: store.max_id(t) for t in ("fix_attempts", "fix_attempt_corrections",
                                             "recommendation_feedback", "events")}  # fmt: skip


@dg.sensor(
    job=memory_load_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a memory load when the memory store has rows the last load did not see.",
)
def memory_events_sensor(
    context: dg.SensorEvaluationContext, settings: SettingsResource
) -> dg.SensorResult:
    store = settings.get_settings().memory_store
    if not store.exists():
        return dg.SensorResult(skip_reason=f"no memory store yet at {store}")
    marks = _store_marks(store)
    previous = json.loads(context.cursor) if context.cursor else {}
    if marks == previous:
        return dg.SensorResult(skip_reason="no new memory events")
    key = ":".join(f"{k}={v}" for k, v in sorted(marks.items()))
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=key)], cursor=json.dumps(marks))


@dg.sensor(
    job=memory_learn_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests memory_learn once after new fix attempts or feedback were loaded "
    "(at most every 5 minutes, however many loads ran meanwhile).",
)
def memory_learn_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    marks = []
    for key in (FIX_ATTEMPTS, FEEDBACK):
        event = context.instance.get_latest_materialization_event(key)
        marks.append(event.timestamp if event is not None else 0.0)
    mark = max(marks)
    if mark == 0.0:
        return dg.SensorResult(skip_reason="nothing loaded from the memory store yet")
    if context.cursor and float(context.cursor) >= mark:
        return dg.SensorResult(skip_reason="no load since the last training")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"memory-learn:{mark:.6f}")], cursor=repr(mark)
    )


daily_memory_learn = dg.ScheduleDefinition(
    name="daily_memory_learn",
    job=memory_learn_job,
    cron_schedule="15 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily retraining: recency weights move with time even without new outcomes.",
)

defs = dg.Definitions(
    assets=[
        memory_tables,
        fix_attempt_embeddings,
        strategy_weights,
        recommender_index,
    ],
    jobs=[memory_load_job, memory_learn_job],
    sensors=[memory_events_sensor, memory_learn_sensor],
    schedules=[daily_memory_learn],
    resources={
        "embedder": EmbedderResource(settings=settings_resource),
        "settings": settings_resource,
    },
)
