"""Publish the warehouse as a read-only snapshot: CHECKPOINT, copy, verify, atomic replace.

Readers (Grafana's DuckDB plugin, notebooks, the API, the MCP server) open
``$SYMBIOTIC_HOME/published/warehouse.duckdb`` with ``read_only=True`` and never take the
warehouse's write lock. The copy is made while this process holds the warehouse open,
right after a CHECKPOINT, so the file holds every committed change and no WAL is needed.
``os.replace`` swaps the snapshot in one step: a reader that opened the old file keeps
reading the old inode, the next one opens the new file.

Format: DuckDB 1.5 writes the snapshot with storage compatibility "v1.0.0+"; the Grafana
plugin embeds DuckDB 1.5.x and reads it. DuckDB 2.x files would not be readable there,
which is why ``duckdb`` is pinned below 1.6 and why the snapshot's storage version is
checked before it is published.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from symbiotic_assets.core.warehouse import connect

SNAPSHOT_NAME = "warehouse.duckdb"
# Readers run as other users (the Grafana container is uid 472): the snapshot must be
# world-readable and its folder world-listable, whatever the publishing process's umask.
SNAPSHOT_MODE = 0o644
FOLDER_MODE = 0o755
# The catalog name readers see: a file's stem. dbt writes views against `warehouse.*`.
SNAPSHOT_CATALOG = "warehouse"
# The newest storage format the Grafana DuckDB plugin's embedded DuckDB (1.5.x) reads.
MAX_READABLE_STORAGE = (1, 5)
_HEADER_MAGIC = b"DUCK"


class PublishError(RuntimeError):
    """The snapshot could not be written or did not verify; the previous one is untouched."""


@dataclass
class PublishResult:
    path: Path
    size_bytes: int
    seconds: float
    storage_version: str
    written_by: str
    tables: int
    views: int
    row_counts: dict[str, int] = field(default_factory=dict)


def snapshot_path(published_dir: str | Path) -> Path:
    return Path(published_dir) / SNAPSHOT_NAME


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_readable_folder(path: Path) -> None:
    """Add read and list permission for everyone to ``path`` (never removes any bit).

    ``mkdir`` applies the umask, so a publisher started under ``umask 077`` would create a
    folder the Grafana container cannot enter.
    """
    mode = path.stat().st_mode & 0o7777
    if mode & FOLDER_MODE != FOLDER_MODE:
        os.chmod(path, mode | FOLDER_MODE)


def _header(path: Path) -> tuple[int, str]:
    """(storage version number, library version that wrote the file) from the main header."""
    with open(path, "rb") as fh:
        head = fh.read(96)
    if len(head) < 64 or head[8:12] != _HEADER_MAGIC:
        raise PublishError(f"{path}: not a DuckDB database file (no DUCK header)")
    number = int.from_bytes(head[12:20], "little")
    written_by = head[52:84].split(b"\0", 1)[0].decode("ascii", errors="replace")
    return number, written_by


def _parse_storage(tag: str) -> tuple[int, int]:
    match = re.match(r"v?(\d+)\.(\d+)", tag or "")
    if not match:
        raise PublishError(f"unrecognised DuckDB storage version tag {tag!r}")
    return int(match.group(1)), int(match.group(2))


def verify_snapshot(path: Path, marts: tuple[str, ...] = ()) -> PublishResult:
    """Open the file read-only as catalog `warehouse` and prove readers can use it.

    Every view must resolve (dbt's staging views name ``warehouse.git.*``), the storage
    format must be one DuckDB 1.5 reads, and the given marts must exist.
    """
    number, written_by = _header(path)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{path.as_posix()}' AS {SNAPSHOT_CATALOG} (READ_ONLY)")
        con.execute(f"USE {SNAPSHOT_CATALOG}")
        tag = con.execute(
            "SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = ?",
            [SNAPSHOT_CATALOG],
        ).fetchone()
        storage = str(tag[0]) if tag and tag[0] else f"header {number}"
        if tag and tag[0] and _parse_storage(storage) > MAX_READABLE_STORAGE:
            raise PublishError(
                f"{path}: storage version {storage} is newer than DuckDB "
                f"{'.'.join(map(str, MAX_READABLE_STORAGE))} (the Grafana plugin) can read"
            )
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ?",
            [SNAPSHOT_CATALOG],
        ).fetchall()
        views = con.execute(
            "SELECT schema_name, view_name FROM duckdb_views() "
            "WHERE database_name = ? AND NOT internal",
            [SNAPSHOT_CATALOG],
        ).fetchall()
        broken = []
        for schema, view in views:
            try:
                con.execute(f'SELECT * FROM "{schema}"."{view}" LIMIT 0').fetchall()
            except duckdb.Error as exc:
                broken.append(f"{schema}.{view}: {exc}")
        if broken:
            raise PublishError(f"{path}: views that readers could not query: {'; '.join(broken)}")
        present = {f"{s}.{t}" for s, t in tables}
        missing = [m for m in marts if f"marts.{m}" not in present]
        if missing:
            raise PublishError(f"{path}: marts missing from the snapshot: {', '.join(missing)}")
        counts = {
            f"marts.{m}": int(con.execute(f"SELECT count(*) FROM marts.{m}").fetchone()[0])  # type: ignore[index]
            for m in marts
        }
    finally:
        con.close()
    return PublishResult(
        path=path, size_bytes=path.stat().st_size, seconds=0.0, storage_version=storage,
        written_by=written_by, tables=len(tables), views=len(views), row_counts=counts,
    )  # fmt: skip


def publish_snapshot(
    warehouse: str | Path,
    published_dir: str | Path,
    *,
    marts: tuple[str, ...] = (),
    wait_seconds: float = 120.0,
) -> PublishResult:
    """Copy the warehouse to ``published_dir/warehouse.duckdb`` atomically, verified first."""
    started = time.perf_counter()
    source = str(warehouse)
    if source.startswith("md:") or source == ":memory:":
        raise PublishError(
            f"warehouse {source!r} is not a local file; publish a local warehouse, or point "
            "readers at the MotherDuck database directly"
        )
    source_path = Path(source).expanduser().resolve()
    if not source_path.is_file():
        raise PublishError(
            f"warehouse {source_path} does not exist; materialize the git assets first"
        )
    target_dir = Path(published_dir).expanduser().resolve()
    target_dir.mkdir(parents=True, exist_ok=True)
    ensure_readable_folder(target_dir)
    target = target_dir / SNAPSHOT_NAME

    fd, tmp_name = tempfile.mkstemp(prefix=".warehouse.", suffix=".publishing", dir=target_dir)
    try:
        # mkstemp creates 0600 files (private by design); the snapshot is for every reader.
        os.fchmod(fd, SNAPSHOT_MODE)
    finally:
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        # Holding the connection keeps other writers out while the bytes are copied.
        with connect(source_path, wait_seconds=wait_seconds) as con:
            con.execute("CHECKPOINT")
            shutil.copyfile(source_path, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        result = verify_snapshot(tmp, marts)
        # A WAL left next to an old snapshot (someone opened it read-write) would be
        # replayed against the new file; snapshots never need one.
        Path(f"{target}.wal").unlink(missing_ok=True)
        os.replace(tmp, target)
        _fsync_dir(target_dir)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    result.path = target
    result.seconds = time.perf_counter() - started
    return result
