"""Opening a file written by an older version migrates it and keeps its rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from memory_records import attempt

from symbiotic_assets.events.store import (
    LATEST_VERSION,
    MIGRATIONS,
    MemoryStore,
    apply_migrations,
    connect,
)

V1_ROW = (
    "fa-legacy-1",
    "type_error",
    "Incompatible return value type (got str, expected int)",
    "src/app/models.py",
    12,
    "mypy",
    "TypeErrorSpecialistAgent",
    "type_error_fix",
    1,
    "old-session",
    "2024-11-02T08:30:00.000000Z",
    "legacy",
    "python",
    "2024-11-02T08:30:01.000000Z",
)


def write_store_at(path: Path, version: int) -> None:
    """A file as version ``version`` of the code left it, with one fix attempt."""
    con = connect(path)
    assert apply_migrations(con, target=version) == version
    con.execute(
        "INSERT INTO fix_attempts (idempotency_key, issue_type, message, file_path, line_number, "
        "stage, agent, strategy, success, session_id, timestamp, project, language, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        V1_ROW,
    )
    con.close()


def tables(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    con.close()
    return names


def test_migrations_are_an_ordered_list():
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST_VERSION + 1))


def test_v1_file_is_migrated_and_keeps_its_rows(tmp_path: Path):
    path = tmp_path / "old.sqlite"
    write_store_at(path, 1)
    assert "events" not in tables(path)
    assert "fix_attempt_corrections" not in tables(path)

    with MemoryStore(path) as store:
        assert store.schema_version == LATEST_VERSION
        (old,) = store.list_fix_attempts()
        assert old.idempotency_key == "fa-legacy-1"
        assert old.deleted is False and old.updated_at is None
        assert old.agent == "TypeErrorSpecialistAgent"
        # Version 2 features work on the migrated row.
        store.update_fix_attempt(old.id, {"success": False}, reason="re-run failed")
        assert store.list_corrections(old.id)[0]["changes"] == {"success": {"old": 1, "new": 0}}
        # Version 3 features exist.
        store.record_event({"session_id": "s", "phase": "start"}, "session")
        assert store.count("events") == 1
        # New rows continue after the old ones; the legacy key still deduplicates.
        assert store.record_fix_attempt(attempt(1)) == old.id + 1
        assert store.record_fix_attempt(attempt(2, idempotency_key="fa-legacy-1")) == old.id
        history = store._con.execute(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        ).fetchall()
    assert [v for v, _ in history] == [1, 2, 3]


def test_v2_file_gets_only_the_missing_step(tmp_path: Path):
    path = tmp_path / "v2.sqlite"
    write_store_at(path, 2)
    con = sqlite3.connect(path)
    before = con.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    con.close()
    with MemoryStore(path) as store:
        after = store._con.execute(
            "SELECT version, applied_at FROM schema_migrations ORDER BY version"
        ).fetchall()
        assert [tuple(r) for r in after[:2]] == sorted(before)
        assert [r[0] for r in after] == [1, 2, 3]
        assert store.count("fix_attempts") == 1


def test_reopening_applies_nothing_twice(tmp_path: Path):
    path = tmp_path / "m.sqlite"
    MemoryStore(path).close()
    MemoryStore(path).close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == LATEST_VERSION
    con.close()


def test_a_failing_step_leaves_the_file_at_its_old_version(tmp_path: Path):
    path = tmp_path / "m.sqlite"
    write_store_at(path, 1)
    con = connect(path)
    # A table in the way of step 2's CREATE TABLE makes the step fail half-way.
    con.execute("CREATE TABLE fix_attempt_corrections (x INTEGER)")
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        apply_migrations(con)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 1
    columns = {r[1] for r in con.execute("PRAGMA table_info(fix_attempts)")}
    assert "deleted" not in columns  # the ALTERs before the failure were rolled back
    con.close()


def test_unknown_target_version_is_refused(tmp_path: Path):
    con = connect(tmp_path / "m.sqlite")
    with pytest.raises(ValueError, match="target: schema version 99 does not exist"):
        apply_migrations(con, target=99)
    con.close()
