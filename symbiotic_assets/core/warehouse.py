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

import dagster as dg
import duckdb

WAREHOUSE_POOL = "duckdb_warehouse"

GIT_SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS git;

CREATE TABLE IF NOT EXISTS git.repositories (
    repository VARCHAR NOT NULL,           -- partition key (a short name)
    repository_path VARCHAR NOT NULL,      -- absolute path of the work tree or bare repository
    default_branch VARCHAR,                -- branch that 'merged' refers to
    is_bare BOOLEAN,
    is_shallow BOOLEAN,
    has_reflog BOOLEAN,                    -- false: branch switches are unknown, not zero
    head_ref VARCHAR,                      -- symbolic HEAD, NULL when detached
    head_hash VARCHAR,
    refs_fingerprint VARCHAR,              -- hash of all history tips; unchanged = nothing to do
    commit_count BIGINT,
    last_commit_at TIMESTAMP,
    extracted_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS git.commits (
    repository VARCHAR NOT NULL,
    hash VARCHAR NOT NULL,
    author_name VARCHAR,
    author_email VARCHAR,
    committer_name VARCHAR,
    committer_email VARCHAR,
    authored_at TIMESTAMP,                 -- UTC
    author_utc_offset_minutes INTEGER,     -- the author's offset, e.g. -300 for -0500
    committed_at TIMESTAMP,                -- UTC
    committer_utc_offset_minutes INTEGER,
    parent_hashes VARCHAR[],
    parent_count INTEGER,
    is_merge BOOLEAN,                      -- two or more parents
    subject VARCHAR,
    body VARCHAR,
    files_changed INTEGER,                 -- from the diff to the first parent; 0 for merges
    insertions BIGINT,                     -- text lines only; binary files are counted apart
    deletions BIGINT,
    binary_files INTEGER,
    is_bot BOOLEAN,
    is_reachable BOOLEAN NOT NULL,         -- false once a rewrite left it behind
    unreachable_since TIMESTAMP,
    extracted_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS git.commit_files (
    repository VARCHAR NOT NULL,
    commit_hash VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    old_path VARCHAR,                      -- set for renames and copies
    is_binary BOOLEAN NOT NULL,
    insertions BIGINT,                     -- NULL for binary files
    deletions BIGINT
);

CREATE TABLE IF NOT EXISTS git.refs (
    repository VARCHAR NOT NULL,
    ref_name VARCHAR NOT NULL,             -- full name, refs/heads/main
    short_name VARCHAR NOT NULL,
    ref_type VARCHAR NOT NULL,             -- branch | remote_branch | tag
    tip_hash VARCHAR,                      -- the commit (annotated tags peeled)
    tip_committed_at TIMESTAMP,
    is_default BOOLEAN,
    is_merged_into_default BOOLEAN,        -- NULL when the repository has no default branch
    extracted_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS git.ref_events (
    repository VARCHAR NOT NULL,
    event_key VARCHAR NOT NULL,            -- stable identity of the reflog line
    ref_name VARCHAR NOT NULL,             -- HEAD or the ref whose log holds the line
    event_type VARCHAR NOT NULL,           -- checkout | branch_created | branch_deleted | branch_renamed
                                           -- | commit | merge | rebase | reset | pull | cherry_pick
                                           -- | clone | fetch | push | other
    from_ref VARCHAR,
    to_ref VARCHAR,
    is_switch BOOLEAN,                     -- checkout with from_ref <> to_ref
    old_hash VARCHAR,
    new_hash VARCHAR,
    actor_name VARCHAR,
    actor_email VARCHAR,
    occurred_at TIMESTAMP,                 -- UTC
    utc_offset_minutes INTEGER,
    message VARCHAR,
    source VARCHAR NOT NULL                -- reflog | refs_snapshot
);

CREATE TABLE IF NOT EXISTS git.merges (
    repository VARCHAR NOT NULL,
    merge_hash VARCHAR NOT NULL,
    parent_count INTEGER NOT NULL,
    first_parent VARCHAR,
    second_parent VARCHAR,
    merge_kind VARCHAR NOT NULL,           -- two_parent | octopus
    unrelated_histories BOOLEAN,           -- the parents share no ancestor
    status VARCHAR NOT NULL,               -- clean | conflict | octopus | parent_missing | error
    has_conflict BOOLEAN,                  -- NULL unless the merge was re-run
    conflicted_paths VARCHAR[],
    detail VARCHAR,
    merged_at TIMESTAMP                    -- committer date, UTC
);

-- git.metrics (a long table of per-day counts) is gone: the dbt marts
-- (fct_commit_velocity_daily and friends) are the one definition of each figure.
DROP VIEW IF EXISTS staging.stg_git__metrics;
DROP TABLE IF EXISTS git.metrics;
"""


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


def ensure_git_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(GIT_SCHEMA_SQL)


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file that Dagster writes; ``database`` may be a path or an ``md:`` URI."""

    database: str

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.database, read_only=read_only) as con:
            yield con
