"""Copy new memory-store rows into the warehouse, by id high-water mark.

The memory store (SQLite, many writers) is the capture plane; the warehouse
(DuckDB, Dagster the only writer) gets a copy for marts and training. Each
table is read from the largest id already loaded, in pages, so a load never
reads the whole store twice and a re-run loads nothing. Corrections to fix
attempts arrive as new rows of ``fix_attempt_corrections``; the attempts they
name are re-read and replaced, so an edit or a delete reaches the warehouse.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from symbiotic_assets.core.schema import ensure_memory_schema
from symbiotic_assets.events.store import MemoryStore

PAGE = 50_000


@dataclass
class LoadResult:
    fix_attempts: int = 0
    corrected_attempts: int = 0
    feedback: int = 0
    events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.fix_attempts + self.corrected_attempts + self.feedback + self.events


def _high_water(con: duckdb.DuckDBPyConnection, source: str) -> int:
    row = con.execute(
        "SELECT max(last_id) FROM memory.load_state WHERE source_table = ?", [source]
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _set_high_water(con: duckdb.DuckDBPyConnection, source: str, last_id: int) -> None:
    con.execute("DELETE FROM memory.load_state WHERE source_table = ?", [source])
    con.execute("INSERT INTO memory.load_state VALUES (?, ?, now()::TIMESTAMP)", [source, last_id])


def _ts(expr: str) -> str:
    """ISO text with an offset (as the store keeps it) to a UTC TIMESTAMP."""
    return f"CAST(CAST({expr} AS TIMESTAMPTZ) AS TIMESTAMP)"


_ATTEMPT_SELECT = f"""
    SELECT id, idempotency_key, issue_type, message, file_path, line_number, stage, agent,
           strategy, success::INTEGER = 1, session_id, {_ts("timestamp")}, project, language,
           {_ts("recorded_at")}, {_ts("updated_at")}, coalesce(deleted, 0)::INTEGER = 1
    FROM page
"""


_FEEDBACK_INSERT = f"""
    INSERT INTO memory.recommendation_feedback
    SELECT id, idempotency_key, recommendation_id, fix_attempt_id, issue_type, agent,
           strategy, shown::INTEGER = 1, followed::INTEGER = 1, outcome, confidence,
           session_id, project, {_ts("timestamp")}, {_ts("recorded_at")}
    FROM page WHERE id NOT IN (SELECT id FROM memory.recommendation_feedback)
"""

_EVENTS_INSERT = f"""
    INSERT INTO memory.events
    SELECT id, idempotency_key, event_type, payload::JSON, {_ts("timestamp")}, {_ts("recorded_at")}
    FROM page WHERE id NOT IN (SELECT id FROM memory.events)
"""


def _new_pages(
    con: duckdb.DuckDBPyConnection, store: MemoryStore, source: str
) -> Iterator[list[dict[str, Any]]]:
    """Pages of ``source`` rows above its high-water mark, in id order.

    The mark is saved once every page has been handled, inside the caller's
    transaction, so a load that fails part-way leaves it where it was.
    """
    last = _high_water(con, source)
    while rows := store.read_since(source, last, limit=PAGE):
        yield rows
        last = int(rows[-1]["id"])
    _set_high_water(con, source, last)


def _run_on_page(con: duckdb.DuckDBPyConnection, page: pd.DataFrame, *statements: str) -> None:
    """Run SQL that reads the rows of ``page`` as the table ``page``."""
    con.register("page", page)
    try:
        for sql in statements:
            con.execute(sql)
    finally:
        con.unregister("page")


def _replace_attempts(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> int:
    if not rows:
        return 0
    page = pd.DataFrame(rows)
    for col in (
        "updated_at",
        "deleted",
        "file_path",
        "line_number",
        "session_id",
        "project",
        "language",
    ):
        if col not in page:
            page[col] = None
    _run_on_page(
        con,
        page,
        "DELETE FROM memory.fix_attempts WHERE id IN (SELECT id FROM page)",
        f"INSERT INTO memory.fix_attempts {_ATTEMPT_SELECT}",
    )
    return len(rows)


def load_memory(store_path: str | Path, con: duckdb.DuckDBPyConnection) -> LoadResult:
    """Bring the warehouse's ``memory`` schema up to date with the store; idempotent."""
    ensure_memory_schema(con)
    result = LoadResult()
    if not Path(store_path).exists():
        return result
    with MemoryStore(store_path) as store:
        con.execute("BEGIN TRANSACTION")
        try:
            # fix attempts, then corrections of attempts loaded earlier
            for rows in _new_pages(con, store, "fix_attempts"):
                result.fix_attempts += _replace_attempts(con, rows)
            for corrections in _new_pages(con, store, "fix_attempt_corrections"):
                ids = sorted({int(c["fix_attempt_id"]) for c in corrections})
                current = store.read_by_ids("fix_attempts", ids)
                result.corrected_attempts += _replace_attempts(con, current)
            for rows in _new_pages(con, store, "recommendation_feedback"):
                _run_on_page(con, pd.DataFrame(rows), _FEEDBACK_INSERT)
                result.feedback += len(rows)
            for rows in _new_pages(con, store, "events"):
                page = pd.DataFrame(rows)
                _run_on_page(con, page, _EVENTS_INSERT)
                for t in page["event_type"]:
                    result.events_by_type[t] = result.events_by_type.get(t, 0) + 1
                result.events += len(rows)
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return result
