"""The published snapshot is readable by other users (Grafana runs as uid 472)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import duckdb

from symbiotic_assets.serving.publish import publish_snapshot


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_snapshot_and_folder_world_readable_under_a_strict_umask(tmp_path: Path) -> None:
    warehouse, published = tmp_path / "warehouse.duckdb", tmp_path / "home" / "published"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.numbers AS SELECT range AS n FROM range(3)")
    previous = os.umask(0o077)  # a cron job or a hardened shell: nothing for group/other
    try:
        first = publish_snapshot(warehouse, published, marts=("numbers",))
        # publishing again replaces the file: the new one must be readable too
        second = publish_snapshot(warehouse, published, marts=("numbers",))
    finally:
        os.umask(previous)
    assert first.path == second.path == published / "warehouse.duckdb"
    assert _mode(second.path) == 0o644
    assert _mode(published) & 0o755 == 0o755
    assert not list(published.glob(".warehouse.*"))


def test_an_existing_private_folder_is_opened_up_and_nothing_removed(tmp_path: Path) -> None:
    warehouse, published = tmp_path / "warehouse.duckdb", tmp_path / "published"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    published.mkdir(mode=0o700)
    os.chmod(published, 0o770)  # group write granted by the owner stays
    publish_snapshot(warehouse, published)
    assert _mode(published) == 0o775
    assert _mode(published / "warehouse.duckdb") == 0o644
