"""The memory store: one SQLite file that many processes append to at once.

Agents, the CLI, the MCP server and batch importers all write here while a
quality loop is running, so the store has to take concurrent writers from
separate processes without losing or doubling a record. SQLite in WAL mode
does that with one file and no server: writers are serialised by SQLite's own
lock (each write is a ``BEGIN IMMEDIATE`` transaction that waits up to
``busy_timeout``), readers never block writers.

Rules the rest of the platform relies on:

* Append-only. Rows are never removed. Fix attempts can be corrected
  (``update_fix_attempt``, ``delete_fix_attempt`` which only sets ``deleted``),
  and every correction is logged, old and new values, in
  ``fix_attempt_corrections``. Triggers refuse ``DELETE`` on every table and
  ``UPDATE`` on all but ``fix_attempts``.
* Idempotent. Every row has a unique ``idempotency_key`` (the client's, or
  one derived from the content, see ``MemoryRecord.content_key``). Recording
  a key that exists writes nothing and returns the original row id.
* Ids only grow, and a row with a smaller id is always committed before one
  with a larger id (SQLite has a single writer at a time), so a reader that
  remembers the largest id it has seen (``read_since``) never misses a row.
  A move to PostgreSQL must replace this with a commit-ordered sequence.
* Versioned schema. ``PRAGMA user_version`` holds the schema version;
  ``MIGRATIONS`` is the ordered list of steps; opening an older file applies
  the missing steps in one transaction, and ``schema_migrations`` records when.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from symbiotic_assets.events.models import (
    EVENT_MODELS,
    MAX_ID,
    EventRecord,
    FixAttempt,
    InvalidRecordError,
    MemoryRecord,
    RecommendationFeedback,
    StoredEvent,
    StoredFeedback,
    StoredFixAttempt,
    format_timestamp,
    normalize_issue_type,
    parse_timestamp,
    printable,
    validate_record,
)


class MemoryStoreError(RuntimeError):
    """The store file cannot be opened or used as a memory store."""


class FixAttemptNotFoundError(LookupError):
    """A correction names a fix attempt id that the store does not hold."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


_APPEND_ONLY_TRIGGERS = """
CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows are never deleted'); END
"""
_NO_UPDATE_TRIGGER = """
CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
BEGIN SELECT RAISE(ABORT, '{table} is append-only: rows are never updated'); END
"""

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "fix attempts and recommendation feedback",
        (
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TEXT NOT NULL
            )
            """,
            """
            CREATE TABLE fix_attempts (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                idempotency_key TEXT NOT NULL UNIQUE,
                issue_type TEXT NOT NULL,
                message TEXT NOT NULL,
                file_path TEXT,
                line_number INTEGER,
                stage TEXT NOT NULL,
                agent TEXT NOT NULL,
                strategy TEXT NOT NULL,
                success INTEGER NOT NULL CHECK (success IN (0, 1)),
                session_id TEXT,
                timestamp TEXT NOT NULL,
                project TEXT,
                language TEXT,
                recorded_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX fix_attempts_issue_type ON fix_attempts (issue_type, timestamp)",
            "CREATE INDEX fix_attempts_agent_strategy ON fix_attempts (agent, strategy)",
            "CREATE INDEX fix_attempts_session ON fix_attempts (session_id)",
            "CREATE INDEX fix_attempts_timestamp ON fix_attempts (timestamp)",
            """
            CREATE TABLE recommendation_feedback (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                idempotency_key TEXT NOT NULL UNIQUE,
                recommendation_id TEXT NOT NULL,
                fix_attempt_id INTEGER,
                issue_type TEXT,
                agent TEXT,
                strategy TEXT,
                shown INTEGER NOT NULL CHECK (shown IN (0, 1)),
                followed INTEGER NOT NULL CHECK (followed IN (0, 1)),
                outcome TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'unknown')),
                confidence REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
                session_id TEXT,
                project TEXT,
                timestamp TEXT NOT NULL,
                recorded_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX feedback_recommendation ON recommendation_feedback (recommendation_id)",
            "CREATE INDEX feedback_attempt ON recommendation_feedback (fix_attempt_id)",
            _APPEND_ONLY_TRIGGERS.format(table="fix_attempts"),
            _APPEND_ONLY_TRIGGERS.format(table="recommendation_feedback"),
            _NO_UPDATE_TRIGGER.format(table="recommendation_feedback"),
        ),
    ),
    Migration(
        2,
        "auditable corrections of fix attempts",
        (
            "ALTER TABLE fix_attempts ADD COLUMN updated_at TEXT",
            "ALTER TABLE fix_attempts ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0 "
            "CHECK (deleted IN (0, 1))",
            """
            CREATE TABLE fix_attempt_corrections (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                fix_attempt_id INTEGER NOT NULL REFERENCES fix_attempts (id),
                action TEXT NOT NULL CHECK (action IN ('update', 'delete', 'restore')),
                changes TEXT NOT NULL CHECK (json_valid(changes)),
                reason TEXT,
                corrected_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX corrections_attempt ON fix_attempt_corrections (fix_attempt_id)",
            _APPEND_ONLY_TRIGGERS.format(table="fix_attempt_corrections"),
            _NO_UPDATE_TRIGGER.format(table="fix_attempt_corrections"),
        ),
    ),
    Migration(
        3,
        "generic events and import quarantine",
        (
            """
            CREATE TABLE events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                idempotency_key TEXT NOT NULL UNIQUE,
                event_type TEXT NOT NULL,
                payload TEXT NOT NULL CHECK (json_valid(payload)),
                timestamp TEXT NOT NULL,
                recorded_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX events_type_time ON events (event_type, timestamp)",
            _APPEND_ONLY_TRIGGERS.format(table="events"),
            _NO_UPDATE_TRIGGER.format(table="events"),
            """
            CREATE TABLE quarantine (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                idempotency_key TEXT NOT NULL UNIQUE,
                source TEXT NOT NULL,
                line_number INTEGER NOT NULL,
                reason TEXT NOT NULL,
                raw TEXT NOT NULL,
                quarantined_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX quarantine_source ON quarantine (source, line_number)",
            _APPEND_ONLY_TRIGGERS.format(table="quarantine"),
            _NO_UPDATE_TRIGGER.format(table="quarantine"),
        ),
    ),
]
LATEST_VERSION = MIGRATIONS[-1].version

# Tables a Dagster asset may read incrementally by id.
READABLE_TABLES = (
    "fix_attempts",
    "recommendation_feedback",
    "events",
    "fix_attempt_corrections",
    "quarantine",
)

CORRECTABLE_FIELDS = (
    "issue_type",
    "message",
    "file_path",
    "line_number",
    "stage",
    "agent",
    "strategy",
    "success",
    "session_id",
    "timestamp",
    "project",
    "language",
)
_FEEDBACK_FIELDS = (
    "recommendation_id",
    "fix_attempt_id",
    "issue_type",
    "agent",
    "strategy",
    "shown",
    "followed",
    "outcome",
    "confidence",
    "session_id",
    "project",
)


class Recorded(NamedTuple):
    """Where a record went: its row id, and whether this call wrote it."""

    id: int
    created: bool


def default_store_path() -> Path:
    """``$SYMBIOTIC_HOME/memory.sqlite``, read when called so that tests and
    deployments that change the environment get their own file."""
    from symbiotic_assets.core.config import load_settings

    return load_settings().memory_store


def _now_text() -> str:
    return format_timestamp(datetime.now(UTC))


def _time_bound(name: str, value: datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{name}: {printable(repr(value))} is not an ISO 8601 timestamp"
            ) from None
    if not isinstance(value, datetime):
        raise TypeError(
            f"{name}: expected an ISO 8601 text or a datetime, got {type(value).__name__}"
        )
    if value.tzinfo is None:
        raise ValueError(
            f"{name}: {value.isoformat()} needs a UTC offset, e.g. 2025-01-31T00:00:00Z"
        )
    try:
        return format_timestamp(value)
    except OverflowError:
        raise ValueError(
            f"{name}: {value.isoformat()} is outside the calendar once converted to UTC"
        ) from None


def _limit(limit: int | None) -> int:
    if limit is None:
        return -1
    if limit < 0 or limit > MAX_ID:
        raise ValueError(f"limit: must be between 0 and {MAX_ID}, got {limit}")
    return limit


def _row_id(name: str, value: int, *, low: int = 1) -> int:
    """A row id (or a bound on one) that SQLite can compare: an int in [low, 2**63 - 1].

    Python ints are unbounded and SQLite's are not; binding 10**20 raises a bare
    OverflowError deep in sqlite3, which names nothing.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an integer id, got {type(value).__name__}")
    if not low <= value <= MAX_ID:
        raise ValueError(f"{name}: {value} is out of range ({low} to {MAX_ID})")
    return value


def apply_migrations(con: sqlite3.Connection, target: int = LATEST_VERSION) -> int:
    """Bring the schema up to ``target`` in one transaction; return the version reached.

    Several processes may open a new file at the same moment: the version is
    re-read after taking the write lock, so only the first applies the steps.
    """
    if target > LATEST_VERSION or target < 1:
        raise ValueError(f"target: schema version {target} does not exist (1..{LATEST_VERSION})")
    current = con.execute("PRAGMA user_version").fetchone()[0]
    if current > LATEST_VERSION:
        raise MemoryStoreError(
            f"the store has schema version {current}, newer than this code knows "
            f"({LATEST_VERSION}); upgrade symbiotic before opening it"
        )
    if current >= target:
        return current
    con.execute("BEGIN IMMEDIATE")
    try:
        current = con.execute("PRAGMA user_version").fetchone()[0]
        for migration in MIGRATIONS:
            if current < migration.version <= target:
                for statement in migration.statements:
                    con.execute(statement)
                con.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, _now_text()),
                )
                current = migration.version
        con.execute(f"PRAGMA user_version = {int(current)}")
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    return current


def connect(
    path: str | Path,
    *,
    busy_timeout_ms: int = 30_000,
    synchronous: str = "NORMAL",
) -> sqlite3.Connection:
    """An autocommit connection in WAL mode with a busy timeout, schema not touched.

    Autocommit (``isolation_level=None``) because the store opens its own
    ``BEGIN IMMEDIATE`` transactions: a deferred transaction that reads and then
    writes can fail at once under contention instead of waiting its turn.
    """
    if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"synchronous: {synchronous!r} is not NORMAL, FULL or EXTRA")
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None)
    except (OSError, ValueError, sqlite3.Error) as exc:  # ValueError: a NUL in the path
        raise MemoryStoreError(f"{path}: cannot open the memory store: {exc}") from exc
    try:
        con.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = _set_wal(con, busy_timeout_ms)
        if mode != "wal":
            raise MemoryStoreError(
                f"{path}: SQLite refused WAL mode (journal_mode is {mode!r}); the memory store "
                "needs a local file system that supports shared memory"
            )
        con.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        con.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        con.close()
        raise MemoryStoreError(f"{path}: not a usable SQLite memory store: {exc}") from exc
    except BaseException:
        con.close()
        raise
    return con


def _set_wal(con: sqlite3.Connection, busy_timeout_ms: int) -> str:
    # Switching a new file to WAL needs an exclusive lock, and SQLite does not
    # always run the busy handler for it; processes opening a fresh file
    # together retry here instead of failing.
    deadline = time.monotonic() + busy_timeout_ms / 1000
    delay = 0.005
    while True:
        try:
            return str(con.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class MemoryStore:
    """An open memory store file. One per process (or thread); close it when done.

    ``MemoryStore(None)`` opens the configured default,
    ``$SYMBIOTIC_HOME/memory.sqlite``.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        busy_timeout_ms: int = 30_000,
        synchronous: str = "NORMAL",
    ) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self._con = connect(self.path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
        self._con.row_factory = sqlite3.Row
        self._depth = 0
        try:
            apply_migrations(self._con)
        except sqlite3.DatabaseError as exc:
            self._con.close()
            raise MemoryStoreError(f"{self.path}: cannot migrate the memory store: {exc}") from exc
        except BaseException:
            self._con.close()
            raise

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._con.close()

    @property
    def schema_version(self) -> int:
        return int(self._con.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[MemoryStore]:
        """Group writes into one commit (the importer uses it per batch of lines).

        Nested use joins the outer transaction, so the record methods can be
        called inside it unchanged.
        """
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._con.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            if self._con.in_transaction:
                self._con.execute("ROLLBACK")
            raise
        self._depth = 0
        self._con.execute("COMMIT")

    @contextmanager
    def savepoint(self) -> Iterator[MemoryStore]:
        """Inside ``transaction()``: writes that are undone alone if the block raises.

        The importer stores each line of a batch under its own savepoint, so that a
        line the database refuses costs that line only, not the batch around it.
        """
        if not self._depth:
            raise RuntimeError("savepoint() needs an open transaction()")
        self._con.execute("SAVEPOINT line")
        try:
            yield self
        except BaseException:
            self._con.execute("ROLLBACK TO line")
            self._con.execute("RELEASE line")
            raise
        self._con.execute("RELEASE line")

    # -- writing ----------------------------------------------------------

    def _insert(self, table: str, key: str, values: Mapping[str, Any]) -> Recorded:
        columns = ["idempotency_key", *values, "recorded_at"]
        params = [key, *values.values(), _now_text()]
        sql = (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
        )
        with self.transaction():
            row = self._con.execute(sql, params).fetchone()
            if row is not None:
                return Recorded(int(row[0]), True)
            existing = self._con.execute(
                f"SELECT id FROM {table} WHERE idempotency_key = ?", (key,)
            ).fetchone()
        return Recorded(int(existing[0]), False)

    def record(self, record: MemoryRecord) -> Recorded:
        """Store any validated record in its table; a known key writes nothing."""
        key = record.effective_key()
        if isinstance(record, FixAttempt):
            return self._insert("fix_attempts", key, _fix_attempt_columns(record))
        if isinstance(record, RecommendationFeedback):
            values = {f: getattr(record, f) for f in _FEEDBACK_FIELDS}
            values["timestamp"] = format_timestamp(record.timestamp)
            return self._insert("recommendation_feedback", key, values)
        if isinstance(record, EventRecord) and record.event_type in EVENT_MODELS:
            payload = record.model_dump(mode="json", exclude={"idempotency_key", "timestamp"})
            values = {
                "event_type": record.event_type,
                "payload": json.dumps(payload, sort_keys=True, ensure_ascii=False),
                "timestamp": format_timestamp(record.timestamp),
            }
            return self._insert("events", key, values)
        raise TypeError(f"record: {type(record).__name__} is not a record the store keeps")

    def record_many(self, records: Iterable[MemoryRecord]) -> list[Recorded]:
        """Store several records in one transaction: all or none."""
        with self.transaction():
            return [self.record(r) for r in records]

    def record_fix_attempt(self, attempt: FixAttempt | Mapping[str, Any]) -> int:
        """Validate and store a fix attempt; return its id (the original one on a retry)."""
        return self.record(_as(FixAttempt, "fix_attempt", attempt)).id

    def record_feedback(self, feedback: RecommendationFeedback | Mapping[str, Any]) -> int:
        return self.record(_as(RecommendationFeedback, "feedback", feedback)).id

    def record_event(
        self, event: EventRecord | Mapping[str, Any], event_type: str | None = None
    ) -> int:
        """Store a session, skill_invocation, search or search_click event.

        A mapping needs ``event_type`` (the argument, or an ``event_type`` key).
        """
        if isinstance(event, EventRecord):
            if event_type is not None and event_type != event.event_type:
                raise ValueError(
                    f"event_type: {event_type!r} does not match the {type(event).__name__} given"
                )
            return self.record(event).id
        data = dict(event)
        kind = event_type or data.pop("event_type", None)
        data.pop("event_type", None)
        if kind not in EVENT_MODELS:
            raise InvalidRecordError(
                "event", [("event_type", f"{kind!r} is not one of {sorted(EVENT_MODELS)}")]
            )
        return self.record(validate_record(str(kind), data)).id

    # -- corrections ------------------------------------------------------

    def _row(self, attempt_id: int) -> sqlite3.Row:
        _row_id("attempt_id", attempt_id)
        row = self._con.execute("SELECT * FROM fix_attempts WHERE id = ?", (attempt_id,)).fetchone()
        if row is None:
            raise FixAttemptNotFoundError(f"fix attempt {attempt_id} does not exist in {self.path}")
        return row

    def _log_correction(
        self, attempt_id: int, action: str, changes: dict[str, Any], reason: str | None, at: str
    ) -> None:
        self._con.execute(
            "INSERT INTO fix_attempt_corrections (fix_attempt_id, action, changes, reason, corrected_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (attempt_id, action, json.dumps(changes, sort_keys=True), reason, at),
        )

    def update_fix_attempt(
        self, attempt_id: int, changes: Mapping[str, Any], *, reason: str | None = None
    ) -> StoredFixAttempt:
        """Correct fields of a recorded attempt; the old values go to the corrections log.

        The corrected record is validated like a new one. The idempotency key is
        kept, so a late retry of the original record still finds this row.
        """
        unknown = sorted(set(changes) - set(CORRECTABLE_FIELDS))
        if unknown:
            raise InvalidRecordError(
                "fix_attempt",
                [
                    (f, f"cannot be corrected; correctable fields: {', '.join(CORRECTABLE_FIELDS)}")
                    for f in unknown
                ],
            )
        with self.transaction():
            row = self._row(attempt_id)
            if row["deleted"]:
                raise ValueError(
                    f"fix attempt {attempt_id} is deleted; restore it before correcting it"
                )
            current = _stored_fix_attempt(row)
            merged = {f: getattr(current, f) for f in CORRECTABLE_FIELDS} | dict(changes)
            corrected = validate_record("fix_attempt", merged)
            assert isinstance(corrected, FixAttempt)
            old_cols = _fix_attempt_columns(current)
            new_cols = _fix_attempt_columns(corrected)
            diff = {
                f: {"old": old_cols[f], "new": new_cols[f]}
                for f in new_cols
                if old_cols[f] != new_cols[f]
            }
            if diff:
                at = _now_text()
                assignments = ", ".join(f"{f} = ?" for f in diff)
                self._con.execute(
                    f"UPDATE fix_attempts SET {assignments}, updated_at = ? WHERE id = ?",
                    [new_cols[f] for f in diff] + [at, attempt_id],
                )
                self._log_correction(attempt_id, "update", diff, reason, at)
            return _stored_fix_attempt(self._row(attempt_id))

    def delete_fix_attempt(self, attempt_id: int, *, reason: str | None = None) -> StoredFixAttempt:
        """Mark an attempt deleted (it stays in the file and the log says who and why)."""
        return self._set_deleted(attempt_id, True, reason)

    def restore_fix_attempt(
        self, attempt_id: int, *, reason: str | None = None
    ) -> StoredFixAttempt:
        return self._set_deleted(attempt_id, False, reason)

    def _set_deleted(self, attempt_id: int, deleted: bool, reason: str | None) -> StoredFixAttempt:
        with self.transaction():
            row = self._row(attempt_id)
            if bool(row["deleted"]) != deleted:
                at = _now_text()
                self._con.execute(
                    "UPDATE fix_attempts SET deleted = ?, updated_at = ? WHERE id = ?",
                    (int(deleted), at, attempt_id),
                )
                action = "delete" if deleted else "restore"
                self._log_correction(
                    attempt_id,
                    action,
                    {"deleted": {"old": not deleted, "new": deleted}},
                    reason,
                    at,
                )
            return _stored_fix_attempt(self._row(attempt_id))

    def list_corrections(self, attempt_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM fix_attempt_corrections"
        params: list[Any] = []
        if attempt_id is not None:
            _row_id("attempt_id", attempt_id)
            sql += " WHERE fix_attempt_id = ?"
            params.append(attempt_id)
        rows = self._con.execute(sql + " ORDER BY id", params).fetchall()
        return [{**dict(r), "changes": json.loads(r["changes"])} for r in rows]

    # -- reading ----------------------------------------------------------

    def get_fix_attempt(
        self, attempt_id: int, *, include_deleted: bool = False
    ) -> StoredFixAttempt | None:
        _row_id("attempt_id", attempt_id)
        row = self._con.execute("SELECT * FROM fix_attempts WHERE id = ?", (attempt_id,)).fetchone()
        if row is None or (row["deleted"] and not include_deleted):
            return None
        return _stored_fix_attempt(row)

    def list_fix_attempts(
        self,
        *,
        issue_type: str | None = None,
        agent: str | None = None,
        strategy: str | None = None,
        success: bool | None = None,
        session_id: str | None = None,
        project: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        include_deleted: bool = False,
        limit: int | None = 1000,
    ) -> list[StoredFixAttempt]:
        """Newest first. ``since`` is inclusive, ``until`` exclusive (event time, UTC)."""
        where: list[str] = []
        params: list[Any] = []
        if issue_type is not None:
            # Same spelling rule as at the door, so "Type-Error" finds type_error.
            try:
                issue_type = normalize_issue_type(issue_type)
            except ValueError as exc:
                raise ValueError(f"issue_type: {issue_type!r} {exc}") from None
        for column, value in (
            ("issue_type", issue_type),
            ("agent", agent),
            ("strategy", strategy),
            ("session_id", session_id),
            ("project", project),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if success is not None:
            where.append("success = ?")
            params.append(int(success))
        _add_time_bounds(where, params, since, until)
        if not include_deleted:
            where.append("deleted = 0")
        sql = "SELECT * FROM fix_attempts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY timestamp DESC, id DESC LIMIT ?"
        rows = self._con.execute(sql, [*params, _limit(limit)]).fetchall()
        return [_stored_fix_attempt(r) for r in rows]

    def list_feedback(
        self,
        *,
        recommendation_id: str | None = None,
        fix_attempt_id: int | None = None,
        agent: str | None = None,
        strategy: str | None = None,
        outcome: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = 1000,
    ) -> list[StoredFeedback]:
        where: list[str] = []
        params: list[Any] = []
        if fix_attempt_id is not None:
            _row_id("fix_attempt_id", fix_attempt_id)
        for column, value in (
            ("recommendation_id", recommendation_id),
            ("fix_attempt_id", fix_attempt_id),
            ("agent", agent),
            ("strategy", strategy),
            ("outcome", outcome),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        _add_time_bounds(where, params, since, until)
        sql = "SELECT * FROM recommendation_feedback"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY timestamp DESC, id DESC LIMIT ?"
        rows = self._con.execute(sql, [*params, _limit(limit)]).fetchall()
        return [_stored_feedback(r) for r in rows]

    def list_events(
        self,
        event_type: str | None = None,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = 1000,
    ) -> list[StoredEvent]:
        """Newest first; ``StoredEvent.parsed()`` returns the typed model."""
        where: list[str] = []
        params: list[Any] = []
        if event_type is not None:
            if event_type not in EVENT_MODELS:
                raise ValueError(f"event_type: {event_type!r} is not one of {sorted(EVENT_MODELS)}")
            where.append("event_type = ?")
            params.append(event_type)
        _add_time_bounds(where, params, since, until)
        sql = "SELECT * FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY timestamp DESC, id DESC LIMIT ?"
        rows = self._con.execute(sql, [*params, _limit(limit)]).fetchall()
        return [
            StoredEvent(
                id=r["id"],
                idempotency_key=r["idempotency_key"],
                event_type=r["event_type"],
                payload=json.loads(r["payload"]),
                timestamp=parse_timestamp(r["timestamp"]),
                recorded_at=parse_timestamp(r["recorded_at"]),
            )
            for r in rows
        ]

    def read_since(
        self, table: str, after_id: int = 0, *, limit: int | None = 10_000
    ) -> list[dict[str, Any]]:
        """Rows with ``id > after_id`` in id order, as stored (0/1 booleans, ISO text, JSON text).

        A Dagster asset keeps the largest id it loaded and asks for more from
        there. Corrections to fix attempts already loaded appear as new rows of
        ``fix_attempt_corrections``; read that table the same way.
        """
        if table not in READABLE_TABLES:
            raise ValueError(f"table: {table!r} is not one of {', '.join(READABLE_TABLES)}")
        _row_id("after_id", after_id, low=0)
        rows = self._con.execute(
            f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT ?", (after_id, _limit(limit))
        ).fetchall()
        return [dict(r) for r in rows]

    def read_by_ids(self, table: str, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Current rows for these ids, as stored (for re-reading corrected fix attempts)."""
        if table not in READABLE_TABLES:
            raise ValueError(f"table: {table!r} is not one of {', '.join(READABLE_TABLES)}")
        for i in ids:
            _row_id("ids", i)
        out: list[dict[str, Any]] = []
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ",".join("?" * len(part))
            out += [
                dict(r)
                for r in self._con.execute(
                    f"SELECT * FROM {table} WHERE id IN ({marks}) ORDER BY id", part
                ).fetchall()
            ]
        return out

    def max_id(self, table: str) -> int:
        if table not in READABLE_TABLES:
            raise ValueError(f"table: {table!r} is not one of {', '.join(READABLE_TABLES)}")
        return int(self._con.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0])

    def count(self, table: str) -> int:
        if table not in READABLE_TABLES:
            raise ValueError(f"table: {table!r} is not one of {', '.join(READABLE_TABLES)}")
        return int(self._con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    # -- quarantine -------------------------------------------------------

    def quarantine_line(self, source: str, line_number: int, reason: str, raw: str) -> bool:
        """Keep a rejected input line with the reason; False if it was already kept.

        Texts are made encodable first (lone surrogates escaped): a quarantine that
        fails on the very text it is meant to keep would lose the line.
        """
        source, reason, raw = printable(source), printable(reason), printable(raw)
        key = hashlib.sha256(f"{source}\n{line_number}\n{raw}".encode()).hexdigest()
        with self.transaction():
            cur = self._con.execute(
                "INSERT INTO quarantine (idempotency_key, source, line_number, reason, raw, quarantined_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
                (key, source, line_number, reason, raw, _now_text()),
            )
            return cur.rowcount == 1

    def list_quarantine(
        self, source: str | None = None, *, limit: int | None = 1000
    ) -> list[dict[str, Any]]:
        sql = "SELECT id, source, line_number, reason, raw, quarantined_at FROM quarantine"
        params: list[Any] = []
        if source is not None:
            sql += " WHERE source = ?"
            params.append(printable(source))
        sql += " ORDER BY id LIMIT ?"
        return [dict(r) for r in self._con.execute(sql, [*params, _limit(limit)]).fetchall()]


def _as(model: type[MemoryRecord], kind: str, data: MemoryRecord | Mapping[str, Any]) -> Any:
    if isinstance(data, model):
        return data
    if isinstance(data, MemoryRecord):
        raise TypeError(
            f"{kind}: expected {model.__name__} or a mapping, got {type(data).__name__}"
        )
    return validate_record(kind, dict(data))


def _add_time_bounds(
    where: list[str], params: list[Any], since: datetime | str | None, until: datetime | str | None
) -> None:
    lower = _time_bound("since", since)
    upper = _time_bound("until", until)
    if lower is not None:
        where.append("timestamp >= ?")
        params.append(lower)
    if upper is not None:
        where.append("timestamp < ?")
        params.append(upper)


def _fix_attempt_columns(attempt: FixAttempt) -> dict[str, Any]:
    return {
        "issue_type": attempt.issue_type,
        "message": attempt.message,
        "file_path": attempt.file_path,
        "line_number": attempt.line_number,
        "stage": attempt.stage,
        "agent": attempt.agent,
        "strategy": attempt.strategy,
        "success": int(attempt.success),
        "session_id": attempt.session_id,
        "timestamp": format_timestamp(attempt.timestamp),
        "project": attempt.project,
        "language": attempt.language,
    }


def _stored_fix_attempt(row: sqlite3.Row) -> StoredFixAttempt:
    # Rows are trusted as written; re-validating them would make a rule
    # tightened later unable to read history recorded before it.
    return StoredFixAttempt.model_construct(
        id=row["id"],
        idempotency_key=row["idempotency_key"],
        issue_type=row["issue_type"],
        message=row["message"],
        file_path=row["file_path"],
        line_number=row["line_number"],
        stage=row["stage"],
        agent=row["agent"],
        strategy=row["strategy"],
        success=bool(row["success"]),
        session_id=row["session_id"],
        timestamp=parse_timestamp(row["timestamp"]),
        project=row["project"],
        language=row["language"],
        recorded_at=parse_timestamp(row["recorded_at"]),
        updated_at=parse_timestamp(row["updated_at"]) if row["updated_at"] else None,
        deleted=bool(row["deleted"]),
    )


def _stored_feedback(row: sqlite3.Row) -> StoredFeedback:
    return StoredFeedback.model_construct(
        id=row["id"],
        idempotency_key=row["idempotency_key"],
        recommendation_id=row["recommendation_id"],
        fix_attempt_id=row["fix_attempt_id"],
        issue_type=row["issue_type"],
        agent=row["agent"],
        strategy=row["strategy"],
        shown=bool(row["shown"]),
        followed=bool(row["followed"]),
        outcome=row["outcome"],
        confidence=row["confidence"],
        session_id=row["session_id"],
        project=row["project"],
        timestamp=parse_timestamp(row["timestamp"]),
        recorded_at=parse_timestamp(row["recorded_at"]),
    )


# -- thin module-level functions -------------------------------------------
# For callers that record one thing and move on (hooks, scripts, the MCP
# server): each opens the store, does one operation and closes it. Pass an open
# ``MemoryStore`` to reuse a connection; a path or None opens one.

StoreLike = MemoryStore | str | Path | None


@contextmanager
def _opened(store: StoreLike) -> Iterator[MemoryStore]:
    if isinstance(store, MemoryStore):
        yield store
        return
    with MemoryStore(store) as opened:
        yield opened


def record_fix_attempt(attempt: FixAttempt | Mapping[str, Any], *, store: StoreLike = None) -> int:
    with _opened(store) as s:
        return s.record_fix_attempt(attempt)


def get_fix_attempt(
    attempt_id: int, *, include_deleted: bool = False, store: StoreLike = None
) -> StoredFixAttempt | None:
    with _opened(store) as s:
        return s.get_fix_attempt(attempt_id, include_deleted=include_deleted)


def list_fix_attempts(
    *,
    issue_type: str | None = None,
    agent: str | None = None,
    strategy: str | None = None,
    success: bool | None = None,
    session_id: str | None = None,
    project: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    include_deleted: bool = False,
    limit: int | None = 1000,
    store: StoreLike = None,
) -> list[StoredFixAttempt]:
    with _opened(store) as s:
        return s.list_fix_attempts(
            issue_type=issue_type,
            agent=agent,
            strategy=strategy,
            success=success,
            session_id=session_id,
            project=project,
            since=since,
            until=until,
            include_deleted=include_deleted,
            limit=limit,
        )


def update_fix_attempt(
    attempt_id: int,
    changes: Mapping[str, Any],
    *,
    reason: str | None = None,
    store: StoreLike = None,
) -> StoredFixAttempt:
    with _opened(store) as s:
        return s.update_fix_attempt(attempt_id, changes, reason=reason)


def delete_fix_attempt(
    attempt_id: int, *, reason: str | None = None, store: StoreLike = None
) -> StoredFixAttempt:
    with _opened(store) as s:
        return s.delete_fix_attempt(attempt_id, reason=reason)


def record_feedback(
    feedback: RecommendationFeedback | Mapping[str, Any], *, store: StoreLike = None
) -> int:
    with _opened(store) as s:
        return s.record_feedback(feedback)


def list_feedback(
    *,
    recommendation_id: str | None = None,
    fix_attempt_id: int | None = None,
    agent: str | None = None,
    strategy: str | None = None,
    outcome: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    limit: int | None = 1000,
    store: StoreLike = None,
) -> list[StoredFeedback]:
    with _opened(store) as s:
        return s.list_feedback(
            recommendation_id=recommendation_id,
            fix_attempt_id=fix_attempt_id,
            agent=agent,
            strategy=strategy,
            outcome=outcome,
            since=since,
            until=until,
            limit=limit,
        )


def record_event(
    event: EventRecord | Mapping[str, Any],
    event_type: str | None = None,
    *,
    store: StoreLike = None,
) -> int:
    with _opened(store) as s:
        return s.record_event(event, event_type)


def list_events(
    event_type: str | None = None,
    *,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    limit: int | None = 1000,
    store: StoreLike = None,
) -> list[StoredEvent]:
    with _opened(store) as s:
        return s.list_events(event_type, since=since, until=until, limit=limit)


def read_since(
    table: str, after_id: int = 0, *, limit: int | None = 10_000, store: StoreLike = None
) -> list[dict[str, Any]]:
    with _opened(store) as s:
        return s.read_since(table, after_id, limit=limit)
