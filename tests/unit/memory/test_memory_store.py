"""The store on a real SQLite file: CRUD, idempotency, corrections, events, incremental reads."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from memory_records import attempt

from symbiotic_assets.events import store as memory
from symbiotic_assets.events.models import (
    FixAttempt,
    InvalidRecordError,
    SearchClick,
    SessionEvent,
    SkillInvocation,
)
from symbiotic_assets.events.store import (
    LATEST_VERSION,
    FixAttemptNotFoundError,
    MemoryStore,
    MemoryStoreError,
)


def test_file_is_wal_with_busy_timeout(tmp_path: Path):
    path = tmp_path / "m.sqlite"
    with MemoryStore(path, busy_timeout_ms=12_345) as s:
        assert s._con.execute("PRAGMA busy_timeout").fetchone()[0] == 12_345
        assert s.schema_version == LATEST_VERSION
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION
    con.close()


def test_default_path_comes_from_settings(symbiotic_home: Path):
    with MemoryStore() as s:
        assert s.path == symbiotic_home / "memory.sqlite"
        s.record_fix_attempt(attempt())
    assert (symbiotic_home / "memory.sqlite").is_file()
    assert memory.list_fix_attempts()[0].agent == "SecurityAgent"


def test_record_get_roundtrip(store: MemoryStore):
    new_id = store.record_fix_attempt(attempt(3, timestamp="2025-03-01T11:00:00+01:00"))
    got = store.get_fix_attempt(new_id)
    assert got is not None
    assert got.id == new_id
    assert got.message.endswith("#3")
    assert got.line_number == 43
    assert got.success is True
    assert got.timestamp == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert got.idempotency_key.startswith("fix_attempt:sha256:")
    assert got.recorded_at.tzinfo is not None
    assert (got.updated_at, got.deleted) == (None, False)
    assert store.get_fix_attempt(new_id + 100) is None


def test_list_filters(store: MemoryStore):
    store.record_fix_attempt(attempt(1))
    store.record_fix_attempt(attempt(2, success=False, session_id="sess-2"))
    store.record_fix_attempt(
        attempt(
            3,
            issue_type="formatting",
            agent="FormattingAgent",
            strategy="format",
            stage="ruff-format",
        )
    )
    store.record_fix_attempt(attempt(4, project="payments", timestamp="2025-04-01T00:00:00Z"))

    def msgs(**filters) -> list[str]:
        return sorted(a.message[-2:] for a in store.list_fix_attempts(**filters))

    assert msgs() == ["#1", "#2", "#3", "#4"]
    assert msgs(issue_type="formatting") == ["#3"]
    assert msgs(issue_type="FORMATTING") == ["#3"]
    assert msgs(agent="SecurityAgent", strategy="security_fix") == ["#1", "#2", "#4"]
    assert msgs(success=False) == ["#2"]
    assert msgs(session_id="sess-2") == ["#2"]
    assert msgs(project="payments") == ["#4"]
    assert msgs(since="2025-03-15T00:00:00Z") == ["#4"]
    assert msgs(until=datetime(2025, 3, 1, 10, 2, tzinfo=UTC)) == ["#1"]
    assert len(store.list_fix_attempts(limit=2)) == 2
    newest = store.list_fix_attempts(limit=1)[0]
    assert newest.message.endswith("#4")
    with pytest.raises(ValueError, match="since: .* needs a UTC offset"):
        store.list_fix_attempts(since=datetime(2025, 1, 1))


def test_same_key_twice_stores_one_row(store: MemoryStore):
    first = store.record(FixAttempt.model_validate(attempt(1, idempotency_key="run-7/issue-1")))
    retry = store.record(FixAttempt.model_validate(attempt(1, idempotency_key="run-7/issue-1")))
    assert first.created and not retry.created
    assert first.id == retry.id
    assert store.count("fix_attempts") == 1


def test_retry_with_same_key_and_other_content_keeps_the_original(store: MemoryStore):
    a = store.record_fix_attempt(attempt(1, idempotency_key="k"))
    b = store.record_fix_attempt(attempt(1, idempotency_key="k", success=False))
    assert a == b
    got = store.get_fix_attempt(a)
    assert got is not None and got.success is True
    assert store.count("fix_attempts") == 1


def test_identical_content_without_key_is_not_double_counted(store: MemoryStore):
    no_time = attempt(5)
    del no_time["timestamp"]
    ids = {store.record_fix_attempt(no_time) for _ in range(3)}
    ids |= {store.record_fix_attempt(attempt(6)) for _ in range(3)}
    assert len(ids) == 2
    assert store.count("fix_attempts") == 2
    # Same content at another time is another attempt.
    store.record_fix_attempt(attempt(6, timestamp="2025-03-02T10:06:00Z"))
    assert store.count("fix_attempts") == 3


def test_unknown_issue_type_is_stored(store: MemoryStore):
    new_id = store.record_fix_attempt(attempt(issue_type="license_header"))
    assert [a.id for a in store.list_fix_attempts(issue_type="license_header")] == [new_id]


def test_invalid_record_names_field_and_writes_nothing(store: MemoryStore):
    with pytest.raises(InvalidRecordError, match=r"fix_attempt\.line_number: .*greater than"):
        store.record_fix_attempt(attempt(line_number=-2))
    assert store.count("fix_attempts") == 0


def test_update_is_validated_and_audited(store: MemoryStore):
    new_id = store.record_fix_attempt(attempt(1))
    key = store.get_fix_attempt(new_id).idempotency_key  # type: ignore[union-attr]
    updated = store.update_fix_attempt(
        new_id, {"success": False, "strategy": "refactor"}, reason="test run was flaky"
    )
    assert (updated.success, updated.strategy) == (False, "refactor")
    assert updated.updated_at is not None
    assert updated.idempotency_key == key
    (log,) = store.list_corrections(new_id)
    assert log["action"] == "update"
    assert log["reason"] == "test run was flaky"
    assert log["changes"] == {
        "success": {"old": 1, "new": 0},
        "strategy": {"old": "security_fix", "new": "refactor"},
    }
    # A retry of the original record still maps to the corrected row.
    assert store.record_fix_attempt(attempt(1)) == new_id
    # No change, no log entry.
    store.update_fix_attempt(new_id, {"success": False})
    assert len(store.list_corrections(new_id)) == 1


def test_update_refuses_bad_input_and_keeps_the_row(store: MemoryStore):
    new_id = store.record_fix_attempt(attempt(1))
    with pytest.raises(InvalidRecordError, match=r"fix_attempt\.line_number"):
        store.update_fix_attempt(new_id, {"line_number": -1})
    with pytest.raises(InvalidRecordError, match=r"fix_attempt\.id: cannot be corrected"):
        store.update_fix_attempt(new_id, {"id": 9})
    with pytest.raises(FixAttemptNotFoundError, match="fix attempt 999 does not exist"):
        store.update_fix_attempt(999, {"success": False})
    got = store.get_fix_attempt(new_id)
    assert got is not None and got.line_number == 41
    assert store.list_corrections() == []


def test_delete_is_soft_audited_and_restorable(store: MemoryStore):
    keep = store.record_fix_attempt(attempt(1))
    gone = store.record_fix_attempt(attempt(2))
    deleted = store.delete_fix_attempt(gone, reason="duplicate from a broken exporter")
    assert deleted.deleted
    assert store.get_fix_attempt(gone) is None
    assert store.get_fix_attempt(gone, include_deleted=True) is not None
    assert [a.id for a in store.list_fix_attempts()] == [keep]
    assert {a.id for a in store.list_fix_attempts(include_deleted=True)} == {keep, gone}
    assert store.count("fix_attempts") == 2
    with pytest.raises(ValueError, match=f"fix attempt {gone} is deleted"):
        store.update_fix_attempt(gone, {"success": False})
    store.restore_fix_attempt(gone, reason="was not a duplicate")
    assert store.get_fix_attempt(gone) is not None
    assert [c["action"] for c in store.list_corrections(gone)] == ["delete", "restore"]


def test_tables_refuse_hard_deletes_and_rewrites(store: MemoryStore):
    store.record_fix_attempt(attempt(1))
    store.record_event(SessionEvent(session_id="s", phase="start"))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._con.execute("DELETE FROM fix_attempts")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._con.execute("UPDATE events SET event_type = 'x'")
    assert store.count("fix_attempts") == 1


def test_feedback_record_and_list(store: MemoryStore):
    attempt_id = store.record_fix_attempt(attempt(1))
    fb_id = store.record_feedback(
        {
            "recommendation_id": "rec-1",
            "fix_attempt_id": attempt_id,
            "agent": "SecurityAgent",
            "strategy": "security_fix",
            "followed": True,
            "outcome": "succeeded",
            "confidence": 0.8,
        }
    )
    assert store.record_feedback({"recommendation_id": "rec-2", "shown": True}) != fb_id
    again = store.record_feedback(
        {
            "recommendation_id": "rec-1",
            "fix_attempt_id": attempt_id,
            "agent": "SecurityAgent",
            "strategy": "security_fix",
            "followed": True,
            "outcome": "succeeded",
            "confidence": 0.8,
        }
    )
    assert again == fb_id
    (fb,) = store.list_feedback(recommendation_id="rec-1")
    assert (fb.followed, fb.shown, fb.outcome, fb.confidence) == (True, True, "succeeded", 0.8)
    assert fb.fix_attempt_id == attempt_id
    assert [f.recommendation_id for f in store.list_feedback(outcome="unknown")] == ["rec-2"]
    with pytest.raises(InvalidRecordError, match=r"feedback\.outcome"):
        store.record_feedback({"recommendation_id": "rec-3", "outcome": "maybe"})


def test_events_of_each_kind(store: MemoryStore):
    store.record_event(
        SessionEvent(
            session_id="s1",
            phase="end",
            project="billing",
            duration_seconds=120.5,
            quality_score=87,
            tools_used=["ruff", "pytest"],
            timestamp=datetime(2025, 3, 1, tzinfo=UTC),
        )
    )
    store.record_event(
        {
            "skill": "RefactoringAgent",
            "completed": True,
            "succeeded": False,
            "error_type": "Timeout",
        },
        "skill_invocation",
    )
    store.record_event({"event_type": "search", "query": "retry logic", "results_shown": ["ab12"]})
    store.record_event(SearchClick(query="retry logic", clicked_hash="ab12", rank=1))
    assert store.count("events") == 4
    (session,) = store.list_events("session")
    parsed = session.parsed()
    assert isinstance(parsed, SessionEvent)
    assert parsed.tools_used == ["ruff", "pytest"] and parsed.quality_score == 87
    (skill,) = store.list_events("skill_invocation")
    assert isinstance(skill.parsed(), SkillInvocation)
    assert skill.payload["error_type"] == "Timeout"
    assert [e.event_type for e in store.list_events(since="2025-06-01T00:00:00Z")] != []
    assert [e.event_type for e in store.list_events(until="2025-06-01T00:00:00Z")] == ["session"]
    # Retried event: same content, same row.
    store.record_event(SearchClick(query="retry logic", clicked_hash="ab12", rank=1))
    assert store.count("events") == 4
    with pytest.raises(InvalidRecordError, match=r"event\.event_type"):
        store.record_event({"query": "x"})
    with pytest.raises(ValueError, match="event_type: 'clicks'"):
        store.list_events("clicks")


def test_read_since_follows_a_high_water_mark(store: MemoryStore):
    for n in range(5):
        store.record_fix_attempt(attempt(n))
    first = store.read_since("fix_attempts", 0)
    assert [r["id"] for r in first] == [1, 2, 3, 4, 5]
    mark = first[-1]["id"]
    for n in range(5, 8):
        store.record_fix_attempt(attempt(n))
    store.record_fix_attempt(attempt(0))  # retry: no new row
    rest = store.read_since("fix_attempts", mark)
    assert [r["message"][-2:] for r in rest] == ["#5", "#6", "#7"]
    assert store.read_since("fix_attempts", rest[-1]["id"]) == []
    assert len(store.read_since("fix_attempts", 0, limit=2)) == 2
    store.update_fix_attempt(2, {"success": False})
    (correction,) = store.read_since("fix_attempt_corrections", 0)
    assert correction["fix_attempt_id"] == 2
    assert memory.read_since("fix_attempts", 7, store=store.path)[0]["id"] == 8
    with pytest.raises(ValueError, match="table: 'sqlite_master' is not one of"):
        store.read_since("sqlite_master", 0)


def test_module_functions_open_the_given_path(tmp_path: Path):
    path = tmp_path / "sub" / "m.sqlite"
    new_id = memory.record_fix_attempt(attempt(1), store=path)
    assert memory.get_fix_attempt(new_id, store=path) is not None
    assert memory.update_fix_attempt(new_id, {"success": False}, store=path).success is False
    assert memory.delete_fix_attempt(new_id, store=path).deleted
    assert memory.list_fix_attempts(store=path) == []
    memory.record_feedback({"recommendation_id": "r"}, store=path)
    assert len(memory.list_feedback(store=path)) == 1
    memory.record_event({"session_id": "s", "phase": "start"}, "session", store=path)
    assert len(memory.list_events("session", store=path)) == 1


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path):
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(MemoryStoreError, match="notes.sqlite"):
        MemoryStore(bogus)


def test_a_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / "future.sqlite"
    MemoryStore(path).close()
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    con.close()
    with pytest.raises(MemoryStoreError, match="newer than this code knows"):
        MemoryStore(path)
