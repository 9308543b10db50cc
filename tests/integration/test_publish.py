"""The published snapshot: atomic replace, old readers unharmed, readable while held."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from symbiotic_assets.analytics import api
from symbiotic_assets.core.warehouse import WarehouseLockedError
from symbiotic_assets.serving.publish import PublishError, publish_snapshot


def make_warehouse(path: Path, rows: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.execute(
            "CREATE OR REPLACE TABLE marts.numbers AS SELECT range AS n FROM range(?)", [rows]
        )


def test_publish_replaces_atomically_and_old_reader_keeps_its_snapshot(tmp_path: Path) -> None:
    warehouse, published = tmp_path / "wh" / "warehouse.duckdb", tmp_path / "published"
    warehouse.parent.mkdir()
    make_warehouse(warehouse, 10)
    first = publish_snapshot(warehouse, published, marts=("numbers",))
    assert first.path == published / "warehouse.duckdb"
    assert first.storage_version.startswith("v1.") and first.written_by.startswith("v1.5")
    assert first.row_counts == {"marts.numbers": 10}
    inode_before = first.path.stat().st_ino

    # a reader (another process, as Grafana is) holds the old snapshot open
    reader = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys
            con = duckdb.connect({str(first.path)!r}, read_only=True)
            print(con.execute("SELECT count(*) FROM marts.numbers").fetchone()[0], flush=True)
            sys.stdin.readline()
            print(con.execute("SELECT count(*), sum(n) FROM marts.numbers").fetchone(), flush=True)
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert reader.stdout is not None and reader.stdin is not None
    assert reader.stdout.readline().strip() == "10"

    make_warehouse(warehouse, 1000)
    second = publish_snapshot(warehouse, published, marts=("numbers",))
    assert second.path.stat().st_ino != inode_before  # a new file, swapped in by rename
    assert not list(published.glob(".warehouse.*"))  # no temporary left behind

    reader.stdin.write("\n")
    reader.stdin.flush()
    assert reader.stdout.readline().strip() == "(10, 45)"  # the old reader still reads old data
    assert reader.wait(timeout=30) == 0
    with duckdb.connect(str(second.path), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.numbers").fetchone()[0] == 1000


def test_snapshot_readable_while_warehouse_held_by_a_writer(tmp_path: Path) -> None:
    warehouse, published = tmp_path / "warehouse.duckdb", tmp_path / "published"
    make_warehouse(warehouse, 5)
    publish_snapshot(warehouse, published)
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys
            con = duckdb.connect({str(warehouse)!r})
            con.execute("INSERT INTO marts.numbers VALUES (99)")
            print("holding", flush=True)
            sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert writer.stdout is not None and writer.stdin is not None
    try:
        assert writer.stdout.readline().strip() == "holding"
        with pytest.raises(duckdb.IOException, match="(?i)lock"):
            duckdb.connect(str(warehouse), read_only=True)  # the warehouse itself is locked
        snapshot = published / "warehouse.duckdb"
        with duckdb.connect(str(snapshot), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM marts.numbers").fetchone()[0] == 5
        with api.open_snapshot(snapshot) as con:  # the API's way: ATTACH read-only
            assert con.execute("SELECT count(*) FROM marts.numbers").fetchone()[0] == 5
        started = time.monotonic()
        with pytest.raises(WarehouseLockedError):
            publish_snapshot(warehouse, published, wait_seconds=0.5)  # publish waits, then says so
        assert time.monotonic() - started < 10
        with duckdb.connect(str(snapshot), read_only=True) as con:  # failed publish: old one intact
            assert con.execute("SELECT count(*) FROM marts.numbers").fetchone()[0] == 5
    finally:
        writer.stdin.write("\n")
        writer.stdin.flush()
        writer.wait(timeout=30)


def test_publish_refuses_a_snapshot_readers_could_not_use(tmp_path: Path) -> None:
    warehouse, published = tmp_path / "warehouse.duckdb", tmp_path / "published"
    make_warehouse(warehouse, 3)
    with duckdb.connect(str(warehouse)) as con:
        # a view bound to another catalog name breaks in the snapshot (catalog `warehouse`)
        con.execute("ATTACH ':memory:' AS elsewhere")
        con.execute("CREATE TABLE elsewhere.t AS SELECT 1 AS x")
        con.execute("CREATE VIEW marts.broken AS SELECT * FROM elsewhere.t")
    with pytest.raises(PublishError, match="marts.broken"):
        publish_snapshot(warehouse, published)
    assert not (published / "warehouse.duckdb").exists()
    with pytest.raises(PublishError, match="missing"):
        make_warehouse(tmp_path / "w2.duckdb", 1)
        publish_snapshot(tmp_path / "w2.duckdb", published, marts=("fct_nothing",))
    with pytest.raises(PublishError, match="not a local file"):
        publish_snapshot("md:symbiotic", published)
