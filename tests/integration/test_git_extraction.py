"""Every git table, asserted exactly on a repository built with git itself."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
from gitrepo import ALICE, BOB, CAROL, GitRepoBuilder, build_standard_repo

from symbiotic_assets.core.config import RepositorySpec
from symbiotic_assets.git.extract import detect_merge_conflicts, refresh_repository


def extract_all(warehouse: Path, spec: RepositorySpec):
    r = refresh_repository(str(warehouse), spec)
    m = detect_merge_conflicts(str(warehouse), spec)
    return r, m


@pytest.fixture
def standard(tmp_path: Path):
    info = build_standard_repo(tmp_path / "repo")
    warehouse = tmp_path / "w.duckdb"
    spec = RepositorySpec(name="std", path=tmp_path / "repo")
    refresh, merges = extract_all(warehouse, spec)
    con = duckdb.connect(str(warehouse), read_only=True)
    yield info, con, refresh, merges, spec, warehouse
    con.close()


def test_commits_table(standard):
    info, con, refresh, _, _, _ = standard
    c = info["commits"]
    assert refresh.new_commits == 10 and refresh.reachable_commits == 10
    rows = con.execute(
        "SELECT hash, author_name, author_email, authored_at, author_utc_offset_minutes, is_merge, "
        "parent_count, subject, is_bot, is_reachable FROM git.commits ORDER BY authored_at"
    ).fetchall()
    assert len(rows) == 10
    by_hash = {r[0]: r for r in rows}
    first = by_hash[c["c1"]]
    assert first[1:5] == (
        "Alice Example",
        "alice@example.com",
        dt.datetime(2024, 3, 1, 14, 0),
        -300,
    )
    retry = by_hash[c["c2"]]
    assert retry[3:5] == (dt.datetime(2024, 3, 2, 4, 30), 330)
    assert by_hash[c["m1"]][5:8] == (True, 2, "Merge branch 'feature'")
    assert by_hash[c["c7"]][8] is True
    assert sum(r[8] for r in rows) == 1
    assert all(r[9] for r in rows)


def test_churn_rename_and_binary(standard):
    info, con, *_ = standard
    c = info["commits"]
    rename = con.execute(
        "SELECT path, old_path, insertions, deletions, is_binary FROM git.commit_files "
        "WHERE commit_hash = ?",
        [c["c3"]],
    ).fetchall()
    assert rename == [("src/application.py", "src/app.py", 0, 0, False)]
    logo = con.execute(
        "SELECT path, is_binary, insertions, deletions FROM git.commit_files WHERE commit_hash = ?",
        [c["c6"]],
    ).fetchall()
    assert logo == [("assets/logo.png", True, None, None)]
    totals = con.execute(
        "SELECT files_changed, insertions, deletions, binary_files FROM git.commits WHERE hash = ?",
        [c["c1"]],
    ).fetchone()
    assert totals == (2, 4, 0, 0)
    assert con.execute(
        "SELECT files_changed, insertions, deletions, binary_files FROM git.commits WHERE hash = ?",
        [c["c6"]],
    ).fetchone() == (1, 0, 0, 1)


def test_merges_have_true_conflict_status(standard):
    info, con, _, merges, _, _ = standard
    c = info["commits"]
    assert (merges.examined, merges.clean, merges.conflict) == (2, 1, 1)
    rows = dict(
        (h, (status, conflict, paths))
        for h, status, conflict, paths in con.execute(
            "SELECT merge_hash, status, has_conflict, conflicted_paths FROM git.merges"
        ).fetchall()
    )
    assert rows[c["m1"]] == ("clean", False, [])
    assert rows[c["m2"]] == ("conflict", True, ["src/application.py"])


def test_refs_and_merged_status(standard):
    info, con, *_ = standard
    refs = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT short_name, ref_type, tip_hash, is_default, is_merged_into_default FROM git.refs"
        ).fetchall()
    }
    c = info["commits"]
    assert set(refs) == {"main", "feature", "topic", "stale-idea", "v1.0"}
    assert refs["main"] == ("branch", c["c7"], True, True)
    assert refs["feature"][3] is True and refs["topic"][3] is True
    assert refs["stale-idea"] == ("branch", c["c8"], False, False)
    assert refs["v1.0"][:2] == ("tag", c["c7"])  # annotated tag peeled to its commit


def test_branch_switches_with_negative_offsets(standard):
    _, con, *_ = standard
    switches = con.execute(
        "SELECT from_ref, to_ref, occurred_at, utc_offset_minutes FROM git.ref_events "
        "WHERE ref_name = 'HEAD' AND is_switch ORDER BY occurred_at"
    ).fetchall()
    assert [(a, b) for a, b, _, _ in switches] == [
        ("main", "feature"), ("feature", "main"), ("main", "topic"), ("topic", "main"),
        ("main", "stale-idea"), ("stale-idea", "main"),
    ]  # fmt: skip
    assert switches[0][2:] == (dt.datetime(2024, 3, 2, 4, 30), -300)
    noop = con.execute(
        "SELECT count(*) FROM git.ref_events WHERE event_type = 'checkout' AND NOT is_switch"
    ).fetchone()
    assert noop == (1,)
    created = con.execute(
        "SELECT to_ref FROM git.ref_events WHERE event_type = 'branch_created' ORDER BY to_ref"
    ).fetchall()
    assert [r[0] for r in created] == ["feature", "stale-idea", "topic"]


def test_no_metrics_table_the_marts_define_velocity(standard, tmp_path: Path):
    """git.metrics is gone (fct_commit_velocity_daily is the one definition); an old
    warehouse that still has it loses it, and its staging view, on the next extraction."""
    _, con, *_ = standard
    tables = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'git'").fetchall()}  # fmt: skip
    assert "metrics" not in tables and {"commits", "merges", "ref_events"} <= tables
    old = tmp_path / "old.duckdb"
    with duckdb.connect(str(old)) as c:
        c.execute("CREATE SCHEMA git; CREATE SCHEMA staging")
        c.execute("CREATE TABLE git.metrics (repository VARCHAR, value DOUBLE)")
        c.execute("CREATE VIEW staging.stg_git__metrics AS SELECT * FROM git.metrics")
    refresh_repository(str(old), RepositorySpec(name="std", path=tmp_path / "repo"))
    with duckdb.connect(str(old), read_only=True) as c:
        left = c.execute(
            "SELECT table_name FROM duckdb_tables() WHERE table_name = 'metrics' UNION ALL "
            "SELECT view_name FROM duckdb_views() WHERE view_name = 'stg_git__metrics'"
        ).fetchall()
    assert left == []


def test_rerun_is_noop_and_idempotent(standard):
    _, con, _, _, spec, warehouse = standard
    con.close()
    again = refresh_repository(str(warehouse), spec)
    assert again.noop
    forced = refresh_repository(str(warehouse), spec, force=True)
    assert forced.new_commits == 0 and forced.new_ref_events == 0
    merges = detect_merge_conflicts(str(warehouse), spec)
    assert merges.examined == 0
    with duckdb.connect(str(warehouse), read_only=True) as c2:
        assert c2.execute("SELECT count(*), count(DISTINCT hash) FROM git.commits").fetchone() == (
            10,
            10,
        )
        assert c2.execute("SELECT count(*) FROM git.merges").fetchone() == (2,)
        total, distinct = c2.execute(
            "SELECT count(*), count(DISTINCT event_key) FROM git.ref_events"
        ).fetchone()
        assert total == distinct > 0


def test_incremental_run_reads_only_new_commits(standard):
    info, con, _, _, spec, warehouse = standard
    con.close()
    b: GitRepoBuilder = info["builder"]
    new = b.commit("Another change", "2024-03-06T10:00:00+0000", ALICE, {"x.txt": "x\n"})
    r = refresh_repository(str(warehouse), spec)
    assert (r.new_commits, r.reachable_commits, r.now_unreachable) == (1, 11, 0)
    with duckdb.connect(str(warehouse), read_only=True) as c2:
        assert c2.execute("SELECT count(*) FROM git.commits WHERE hash = ?", [new]).fetchone() == (
            1,
        )


def test_history_rewrite_marks_commits_unreachable(standard):
    info, con, _, _, spec, warehouse = standard
    con.close()
    b: GitRepoBuilder = info["builder"]
    c = info["commits"]
    # drop the unmerged experiment branch and rewrite main's last commit (amend)
    b.git("branch", "-D", "stale-idea")
    b.git("commit", "-q", "--amend", "-m", "Bump dependency (amended)", date="2024-03-05T01:30:00+0000",
          who=BOB)  # fmt: skip
    b.git("tag", "-d", "v1.0")
    r = refresh_repository(str(warehouse), spec)
    assert r.new_commits == 1
    assert r.now_unreachable == 2  # c7 (amended away) and c8 (branch deleted)
    assert r.deleted_branches == ["stale-idea"]
    with duckdb.connect(str(warehouse), read_only=True) as c2:
        gone = {
            h
            for (h,) in c2.execute("SELECT hash FROM git.commits WHERE NOT is_reachable").fetchall()
        }
        assert gone == {c["c7"], c["c8"]}
        live = c2.execute("SELECT count(*) FROM git.commits WHERE is_reachable").fetchone()[0]
        deleted = c2.execute(
            "SELECT from_ref, source FROM git.ref_events WHERE event_type = 'branch_deleted'"
        ).fetchall()
    git_count = int(b.git("rev-list", "--count", "--all").strip())
    assert live == git_count == 9
    assert deleted == [("stale-idea", "refs_snapshot")]
    # the old tip comes back: its commit is reachable again, not duplicated
    b.git("branch", "stale-idea", c["c8"])
    r2 = refresh_repository(str(warehouse), spec)
    assert (r2.new_commits, r2.reachable_again) == (0, 1)


def test_octopus_and_unrelated_histories(tmp_path: Path):
    b = GitRepoBuilder(tmp_path / "repo")
    b.commit("base", "2024-01-01T00:00:00+0000", ALICE, {"a.txt": "a\n"})
    for name in ("x", "y"):
        b.git("branch", name)
        b.checkout(name)
        b.commit(f"on {name}", "2024-01-02T00:00:00+0000", BOB, {f"{name}.txt": name})
        b.checkout("main")
    b.git(
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "octopus",
        "x",
        "y",
        date="2024-01-03T00:00:00+0000",
        who=CAROL,
    )
    b.git("checkout", "-q", "--orphan", "other")
    b.git("rm", "-rq", "--cached", ".")
    (tmp_path / "repo" / "a.txt").unlink()
    (tmp_path / "repo" / "x.txt").unlink()
    (tmp_path / "repo" / "y.txt").unlink()
    b.commit("unrelated root", "2024-01-04T00:00:00+0000", CAROL, {"b.txt": "b\n"})
    b.checkout("main")
    b.git("merge", "-q", "--no-ff", "--allow-unrelated-histories", "-m", "join", "other",
          date="2024-01-05T00:00:00+0000", who=CAROL)  # fmt: skip
    spec = RepositorySpec(name="oct", path=tmp_path / "repo")
    _, merges = extract_all(tmp_path / "w.duckdb", spec)
    assert (merges.octopus, merges.unrelated, merges.clean, merges.conflict) == (1, 1, 1, 0)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        kinds = sorted(con.execute(
            "SELECT merge_kind, status, unrelated_histories, parent_count FROM git.merges"
        ).fetchall())  # fmt: skip
        assert kinds == [("octopus", "octopus", None, 3), ("two_parent", "clean", True, 2)]
        two_parent = con.execute(
            "SELECT count(*) FROM git.merges WHERE merge_kind = 'two_parent'"
        ).fetchone()
        assert two_parent == (1,)  # the octopus is reported, not counted as a two-parent merge


def test_merge_detection_leaves_repository_objects_untouched(standard):
    info, con, *_ = standard
    b: GitRepoBuilder = info["builder"]
    # the merges were re-run in the fixture; no loose object was written by that
    count_before = b.git("count-objects").split()[0]
    con.close()
    spec = RepositorySpec(name="std2", path=b.path)
    extract_all(Path(str(b.path) + "-w.duckdb"), spec)
    assert b.git("count-objects").split()[0] == count_before
