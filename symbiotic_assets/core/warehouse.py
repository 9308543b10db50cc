"""The DuckDB warehouse: short-lived connections and the table definitions.

DuckDB lets one process write a file at a time. Dagster is the only writer;
steps that write are serialized through the ``duckdb_warehouse`` pool, and a
connection that finds the file locked (another run holding it for a moment)
waits and retries instead of failing the step.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

WAREHOUSE_POOL = "duckdb_warehouse"


class WarehouseLockedError(RuntimeError):
    """Another process held the warehouse for longer than we were willing to wait."""


@contextmanager
def connect(
    database: str | Path, *, read_only: bool = False, wait_seconds: float = 120.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse briefly; wait while another process holds its lock."""
    database = str(database)
    if not database.startswith("md:") and database != ":memory:" and not read_only:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(database, read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                if "lock" in str(exc).lower():
                    raise WarehouseLockedError(
                        f"warehouse {database} stayed locked by another process for "
                        f"{wait_seconds:.0f}s: {exc}"
                    ) from exc
                raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists in the connection's database."""
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])
