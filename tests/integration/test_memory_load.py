"""Memory store -> warehouse: incremental, idempotent, corrections and deletions carried over."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from symbiotic_assets.core.resources import SettingsResource
from symbiotic_assets.events.store import MemoryStore
from symbiotic_assets.memory.loader import load_memory


def attempt(i: int, success: bool = True) -> dict:
    return {
        "issue_type": "security" if i % 2 else "formatting",
        "message": f"issue number {i}",
        "file_path": f"src/mod_{i}.py",
        "line_number": i,
        "stage": "bandit" if i % 2 else "ruff-format",
        "agent": "SecurityAgent" if i % 2 else "FormattingAgent",
        "strategy": "security_fix" if i % 2 else "format",
        "success": success,
        "session_id": "s-1",
        "timestamp": f"2024-05-0{1 + i % 5}T10:00:00-05:00",
        "project": "alpha",
    }


def test_load_is_incremental_idempotent_and_applies_corrections(tmp_path: Path):
    store_path = tmp_path / "memory.sqlite"
    with MemoryStore(store_path) as store:
        ids = [store.record_fix_attempt(attempt(i, success=i != 3)) for i in range(6)]
        store.record_feedback({"recommendation_id": "r1", "agent": "SecurityAgent", "strategy": "security_fix",
                               "shown": True, "followed": True, "outcome": "succeeded", "confidence": 0.8,
                               "timestamp": "2024-05-02T00:00:00+00:00"})  # fmt: skip
        store.record_event({"session_id": "s-1", "phase": "end", "project": "alpha", "duration_seconds": 60.0,
                            "quality_score": 80.0, "timestamp": "2024-05-02T00:00:00+00:00"},
                           event_type="session")  # fmt: skip
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    first = load_memory(store_path, con)
    assert (first.fix_attempts, first.feedback, first.events) == (6, 1, 1)
    assert con.execute(
        "SELECT timestamp FROM memory.fix_attempts WHERE id = ?", [ids[0]]
    ).fetchone()[0].isoformat() == ("2024-05-01T15:00:00")  # -05:00 converted to UTC
    again = load_memory(store_path, con)
    assert again.total == 0
    assert con.execute("SELECT count(*) FROM memory.fix_attempts").fetchone() == (6,)

    with MemoryStore(store_path) as store:
        store.update_fix_attempt(ids[3], {"success": True}, reason="re-run showed it passed")
        store.delete_fix_attempt(ids[5], reason="duplicate report")
        store.record_fix_attempt(attempt(6))
    third = load_memory(store_path, con)
    assert (third.fix_attempts, third.corrected_attempts) == (1, 2)
    rows = {i: (ok, gone) for i, ok, gone in con.execute(
        "SELECT id, success, deleted FROM memory.fix_attempts").fetchall()}  # fmt: skip
    assert len(rows) == 7
    assert rows[ids[3]] == (True, False)  # the correction reached the warehouse
    assert rows[ids[5]] == (True, True)  # the deletion is flagged, not lost
    payload = con.execute("SELECT payload->>'quality_score' FROM memory.events").fetchone()
    assert payload == ("80.0",)


def test_memory_asset_and_sensor(symbiotic_home: Path):
    from symbiotic_assets.definitions import build_definitions

    defs = build_definitions()
    sensor = defs.resolve_sensor_def("memory_events_sensor")
    settings = {"settings": SettingsResource()}  # called directly, the sensor needs its resource
    with dg.instance_for_test() as instance:
        skipped = sensor(dg.build_sensor_context(instance=instance, resources=settings))
        assert not skipped.run_requests
        with MemoryStore(symbiotic_home / "memory.sqlite") as store:
            store.record_fix_attempt(attempt(1))
        fired = sensor(dg.build_sensor_context(instance=instance, resources=settings))
        assert len(fired.run_requests) == 1
        quiet = sensor(
            dg.build_sensor_context(instance=instance, resources=settings, cursor=fired.cursor)
        )
        assert not quiet.run_requests
        result = defs.resolve_job_def("memory_load").execute_in_process(instance=instance)
        assert result.success
        mat = instance.fetch_materializations(
            dg.AssetKey(["memory", "fix_attempts"]), limit=1
        ).records[0]
        assert mat.asset_materialization.metadata["total_rows"].value == 1
