"""Repositories that lack objects degrade instead of failing.

A damaged object store (loose blobs deleted from a repository built with git) and a
real partial clone (``git clone --filter=blob:none`` over ``file://``, whose origin is
then removed): commits, refs and the reflog are extracted in full, commits whose diff
needs a missing blob get NULL churn, every other commit the exact numstat git gives.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from gitrepo import ALICE, BOB, GitRepoBuilder

from symbiotic_assets.core.config import RepositorySpec
from symbiotic_assets.git import repository as repository_module
from symbiotic_assets.git.extract import refresh_repository
from symbiotic_assets.git.missing import diff_blobs, is_partial_clone


def _numstat(repo: GitRepoBuilder, commit: str) -> list[tuple]:
    """(path, old path, binary, insertions, deletions) as git itself gives them."""
    out = repo.git("diff-tree", "-z", "-r", "-M", "--numstat", "--root", "--no-commit-id", commit)
    tokens = out.split("\0")
    rows, i = [], 0
    while i < len(tokens):
        tok = tokens[i].lstrip("\n")
        i += 1
        if not tok:
            continue
        ins, dels, path = tok.split("\t", 2)
        old = None
        if not path:
            old, path = tokens[i], tokens[i + 1]
            i += 2
        binary = ins == "-"
        rows.append(
            (path, old, binary, None if binary else int(ins), None if binary else int(dels))
        )
    return sorted(rows, key=str)


def _stored(warehouse: Path, name: str) -> tuple[dict, dict]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        commits = {
            h: (files, ins, dels, binary)
            for h, files, ins, dels, binary in con.execute(
                "SELECT hash, files_changed, insertions, deletions, binary_files FROM git.commits "
                "WHERE repository = ?",
                [name],
            ).fetchall()
        }
        files: dict[str, list] = {}
        for h, *row in con.execute(
            "SELECT commit_hash, path, old_path, is_binary, insertions, deletions "
            "FROM git.commit_files WHERE repository = ?",
            [name],
        ).fetchall():
            files.setdefault(h, []).append(tuple(row))
        return commits, {h: sorted(rows, key=str) for h, rows in files.items()}
    finally:
        con.close()


def _loose_path(repo: GitRepoBuilder, oid: str) -> Path:
    return repo.path / ".git" / "objects" / oid[:2] / oid[2:]


@pytest.fixture
def damaged(tmp_path: Path):
    """Seven commits on two branches and a tag; the blob of a.txt v2 is then deleted."""
    repo = GitRepoBuilder(tmp_path / "repo")
    c = {}
    c["c1"] = repo.commit(
        "one", "2024-01-01T10:00:00+0100", ALICE, {"a.txt": "v1\n", "b.txt": "b\n"}
    )
    c["c2"] = repo.commit("two", "2024-01-02T10:00:00-0500", BOB, {"a.txt": "v1\nv2\n"})
    c["c3"] = repo.commit("three", "2024-01-03T10:00:00+0000", ALICE, {"c.txt": "c1\nc2\nc3\n"})
    repo.git("mv", "c.txt", "d.txt")
    c["c4"] = repo.commit("rename", "2024-01-04T10:00:00+0530", BOB)
    repo.checkout("-b", "topic")
    c["c5"] = repo.commit("topic work", "2024-01-05T10:00:00+0000", ALICE, {"b.txt": "b\nb2\n"})
    repo.checkout("main")
    c["c6"] = repo.commit("three of a", "2024-01-06T10:00:00+0000", BOB, {"a.txt": "v3\n"})
    repo.git("tag", "v1", c["c4"])
    c["c7"] = repo.commit("binary", "2024-01-07T10:00:00+0000", ALICE, {"logo.bin": b"\0\1\2"})
    # every diff below was computable; remember git's answer before the damage
    expected = {name: _numstat(repo, h) for name, h in c.items()}
    lost = repo.git("rev-parse", f"{c['c2']}:a.txt").strip()
    _loose_path(repo, lost).unlink()
    return repo, c, expected, lost


def test_damaged_store_keeps_history_and_marks_churn_unknown(damaged, tmp_path: Path):
    repo, c, expected, lost = damaged
    # the damage is real: git log --numstat itself dies on it
    proc = subprocess.run(
        ["git", "log", "--all", "--numstat"], cwd=repo.path, env=repo.env, capture_output=True
    )
    assert proc.returncode != 0, proc.stderr

    warehouse = tmp_path / "w.duckdb"
    spec = RepositorySpec(name="damaged", path=repo.path)
    result = refresh_repository(str(warehouse), spec)

    # c2 adds v2 (new side), c6 replaces it (old side): their diffs need the lost blob
    unknown = {c["c2"], c["c6"]}
    assert result.missing_objects == 1
    assert result.churn_unknown == 2 and result.new_commits == 7
    assert "missing" in result.degraded_reason
    commits, files = _stored(warehouse, "damaged")
    assert set(commits) == set(c.values())
    for name, h in c.items():
        if h in unknown:
            assert commits[h] == (None, None, None, None), name
            assert h not in files, name
        else:
            rows = expected[name]
            assert files.get(h, []) == rows, name
            text = [r for r in rows if not r[2]]
            assert commits[h] == (
                len(rows),
                sum(r[3] for r in text),
                sum(r[4] for r in text),
                len(rows) - len(text),
            ), name
    assert files[c["c4"]] == [("d.txt", "c.txt", False, 0, 0)]  # the rename survived

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        refs = {
            r[0]: r[1] for r in con.execute("SELECT ref_name, tip_hash FROM git.refs").fetchall()
        }
        events = con.execute("SELECT count(*) FROM git.ref_events").fetchone()[0]
    finally:
        con.close()
    assert refs == {
        "refs/heads/main": c["c7"],
        "refs/heads/topic": c["c5"],
        "refs/tags/v1": c["c4"],
    }
    assert events > 0

    # re-running changes nothing and duplicates nothing
    again = refresh_repository(str(warehouse), spec, force=True)
    assert again.new_commits == 0 and again.new_files == 0
    assert _stored(warehouse, "damaged") == (commits, files)


def test_damaged_store_incremental_run_reads_only_new_commits(damaged, tmp_path: Path):
    repo, c, _, _ = damaged
    warehouse = tmp_path / "w.duckdb"
    spec = RepositorySpec(name="damaged", path=repo.path)
    refresh_repository(str(warehouse), spec)
    c8 = repo.commit("eight", "2024-01-08T10:00:00+0000", BOB, {"e.txt": "e\n"})
    result = refresh_repository(str(warehouse), spec)
    assert result.new_commits == 1 and result.churn_unknown == 0
    commits, files = _stored(warehouse, "damaged")
    assert commits[c8] == (1, 1, 0, 0) and files[c8] == [("e.txt", None, False, 1, 0)]
    assert commits[c["c2"]] == (None, None, None, None)


def test_raw_diff_parser_skips_paths_by_position():
    blob1, blob2, zero = "1" * 40, "2" * 40, "0" * 40
    gitlink = "3" * 40
    stream = (
        b"\x1e" + b"a" * 40 + b"\0\n"
        + f":100644 100644 {blob1} {blob2} M".encode() + b"\0:odd path\0"
        + f":000000 100644 {zero} {blob1} A".encode() + b"\0\x1etricky\0"
        + f":160000 160000 {gitlink} {gitlink} M".encode() + b"\0sub\0"
        + b"\x1e" + b"b" * 40 + b"\0"
    )  # fmt: skip
    for size in (1, 5, len(stream)):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert list(diff_blobs(chunks)) == [("a" * 40, {blob1, blob2}), ("b" * 40, set())]


@pytest.fixture
def partial_clone(tmp_path: Path):
    """A ``--filter=blob:none`` clone over file://, its origin then deleted."""
    origin = GitRepoBuilder(tmp_path / "origin")
    origin.git("config", "uploadpack.allowFilter", "true")
    origin.git("config", "uploadpack.allowAnySHA1InWant", "true")
    hashes = [
        origin.commit(
            "one", "2024-02-01T10:00:00+0000", ALICE, {"a.txt": "1\n", "keep.txt": "k\n"}
        ),
        origin.commit("two", "2024-02-02T10:00:00+0000", BOB, {"a.txt": "1\n2\n"}),
        origin.commit("three", "2024-02-03T10:00:00+0000", ALICE, {"b.txt": "b\n"}),
        origin.commit("four", "2024-02-04T10:00:00+0000", BOB, {"a.txt": "1\n2\n4\n"}),
    ]
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--filter=blob:none", f"file://{origin.path}", str(clone)],
        env=origin.env, check=True, capture_output=True,
    )  # fmt: skip
    shutil.rmtree(origin.path)
    return clone, hashes, origin.env


def test_partial_clone_never_fetches_and_keeps_history(partial_clone, tmp_path, monkeypatch):
    clone, hashes, env = partial_clone
    trace = tmp_path / "trace.txt"
    # the same check, proven able to fail: plain git log asks the promisor remote
    subprocess.run(
        ["git", "log", "--numstat"], cwd=clone, env={**env, "GIT_TRACE": str(trace)},
        capture_output=True, check=False,
    )  # fmt: skip
    assert " fetch " in trace.read_text()
    trace.unlink()

    # GIT_NO_LAZY_FETCH is honoured from git 2.39.4/2.45 on; drop it, as older gits
    # ignore it, so that only the extraction's own strategy stands between us and a fetch
    hardened = repository_module.git_environment

    def traced_env(**extra: str) -> dict[str, str]:
        env = hardened(**extra, GIT_TRACE=str(trace))
        env.pop("GIT_NO_LAZY_FETCH", None)
        return env

    monkeypatch.setattr(repository_module, "git_environment", traced_env)
    warehouse = tmp_path / "w.duckdb"
    spec = RepositorySpec(name="partial", path=clone)
    result = refresh_repository(str(warehouse), spec)
    traced = trace.read_text()
    assert "rev-list" in traced  # the trace saw our git processes ...
    assert " fetch " not in traced  # ... and not one fetch among them

    from symbiotic_assets.git.repository import GitRepository

    assert is_partial_clone(GitRepository.open("partial", clone))
    commits, files = _stored(warehouse, "partial")
    assert set(commits) == set(hashes) and result.new_commits == 4
    # the checkout holds the blobs of the last commit only: 1\n2\n4\n, k, b. The first
    # three diffs need earlier blobs; the last one needs a.txt "1\n2\n" (missing) too.
    assert result.churn_unknown == sum(1 for h in hashes if commits[h][0] is None)
    assert commits[hashes[2]] == (1, 1, 0, 0) and files[hashes[2]] == [("b.txt", None, False, 1, 0)]
    for h in (hashes[0], hashes[1], hashes[3]):
        assert commits[h] == (None, None, None, None)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        refs = dict(con.execute("SELECT ref_name, tip_hash FROM git.refs").fetchall())
    finally:
        con.close()
    assert refs["refs/heads/main"] == hashes[3]
    assert refs["refs/remotes/origin/main"] == hashes[3]


def test_dagster_run_warns_on_unknown_churn(damaged, symbiotic_home: Path, tmp_path, monkeypatch):
    repo, _, _, _ = damaged
    cfg = tmp_path / "symbiotic.yaml"
    cfg.write_text(f"repositories:\n  - path: {repo.path}\n    name: damaged\n")
    monkeypatch.setenv("SYMBIOTIC_CONFIG", str(cfg))
    from symbiotic_assets.definitions import build_definitions

    job = build_definitions().resolve_job_def("git_refresh")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("repositories", ["damaged"])
        run = job.execute_in_process(partition_key="damaged", instance=instance)
        assert run.success  # degraded, not failed
        checks = {
            e.event_specific_data.check_name: e.event_specific_data
            for e in run.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        }
        churn = checks["churn_known"]
        assert not churn.passed and churn.severity == dg.AssetCheckSeverity.WARN
        assert churn.metadata["commits_with_unknown_churn"].value == 2
        assert checks["commit_count_matches_git"].passed
        mat = instance.fetch_materializations(dg.AssetKey(["git", "commits"]), limit=1).records[0]
        meta = mat.asset_materialization.metadata
        assert meta["churn_unknown"].value == 2 and meta["missing_objects"].value == 1
        warnings = [
            e.message
            for e in instance.all_logs(run.run_id)
            if e.level == logging.WARNING and "unknown churn" in (e.message or "")
        ]
        assert warnings


def _dbt_model(name: str) -> str:
    """A model's SQL with source()/ref() resolved to the warehouse tables and sibling views."""
    root = Path(__file__).resolve().parents[2] / "dbt_models" / "models"
    sql = next(root.rglob(f"{name}.sql")).read_text()
    sql = re.sub(r"\{\{\s*source\('git',\s*'(\w+)'\)\s*\}\}", r"git.\1", sql)
    return re.sub(r"\{\{\s*ref\('(\w+)'\)\s*\}\}", r"\1", sql)


def test_dbt_models_keep_unknown_churn_unknown(damaged, tmp_path: Path):
    repo, c, expected, _ = damaged
    warehouse = tmp_path / "w.duckdb"
    refresh_repository(str(warehouse), RepositorySpec(name="damaged", path=repo.path))
    con = duckdb.connect(str(warehouse))
    try:
        for model in ("stg_git__repositories", "stg_git__commits", "fct_commit_velocity_daily"):
            con.execute(f"CREATE VIEW {model} AS {_dbt_model(model)}")
        staged = dict(
            con.execute("SELECT commit_hash, insertions FROM stg_git__commits").fetchall()
        )
        assert staged[c["c2"]] is None and staged[c["c6"]] is None  # not coalesced to 0
        assert staged[c["c3"]] == 3
        day = dict(
            con.execute(
                "SELECT commit_date, (insertions, unknown_churn_commits) "
                "FROM fct_commit_velocity_daily"
            ).fetchall()
        )
    finally:
        con.close()
    assert day[dt.date(2024, 1, 2)] == (0, 1)  # c2: unknown, and said so
    assert day[dt.date(2024, 1, 3)] == (3, 0)  # c3: three lines, known
    assert day[dt.date(2024, 1, 7)] == (0, 0)  # c7: a binary file, known


def test_run_summary_warns_about_unknown_churn(damaged, tmp_path: Path, capsys) -> None:
    from symbiotic_assets.cli import _print_summary

    repo, c, _expected, _lost = damaged
    healthy = GitRepoBuilder(tmp_path / "healthy")
    healthy.commit("only", "2024-01-01T10:00:00+0000", ALICE, {"x.txt": "x\n"})
    warehouse = tmp_path / "w.duckdb"
    refresh_repository(str(warehouse), RepositorySpec(name="damaged", path=repo.path))
    refresh_repository(str(warehouse), RepositorySpec(name="healthy", path=healthy.path))
    _print_summary(str(warehouse), [("damaged", True, ""), ("healthy", True, "")])
    out = capsys.readouterr().out
    warnings = [line for line in out.splitlines() if line.startswith("warning")]
    assert warnings == [
        "warning damaged: 2 commits with unknown churn, 0 merges with unknown conflict status "
        "(objects missing from the clone; see docs/git-history.md, 'Partial and damaged clones')"
    ]
