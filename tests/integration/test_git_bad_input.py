"""Repositories that are missing, odd or hostile: each gets a clear result."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import duckdb
import pytest
from gitrepo import ALICE, BOB, GitRepoBuilder, build_standard_repo

from symbiotic_assets.core.config import ConfigError, RepositorySpec, load_settings
from symbiotic_assets.git.extract import detect_merge_conflicts, refresh_repository
from symbiotic_assets.git.repository import GitRepository, RepositoryError


def run_all(warehouse: Path, spec: RepositorySpec):
    r = refresh_repository(str(warehouse), spec)
    m = detect_merge_conflicts(str(warehouse), spec)
    return r, m


def git_count(path: Path) -> int:
    out = subprocess.run(
        [
            "git",
            "-C",
            str(path),
            "rev-list",
            "--count",
            "--branches",
            "--remotes",
            "--tags",
            "HEAD",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def test_missing_path_and_non_repository_name_the_repository(tmp_path: Path):
    with pytest.raises(RepositoryError, match=r"repository 'ghost': path .*nowhere does not exist"):
        refresh_repository(
            str(tmp_path / "w.duckdb"), RepositorySpec("ghost", tmp_path / "nowhere")
        )
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(RepositoryError, match=r"repository 'plain': .*is not a git repository"):
        refresh_repository(str(tmp_path / "w.duckdb"), RepositorySpec("plain", plain))
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(RepositoryError, match="is not a directory"):
        GitRepository.open("f", afile)


@pytest.mark.parametrize(
    "bad", ["--upload-pack=touch pwned", "ext::sh -c touch% pwned", "https://example.com/r.git"]
)
def test_urls_transports_and_options_are_refused(tmp_path: Path, bad: str, monkeypatch):
    with pytest.raises(RepositoryError, match="not a local path"):
        GitRepository.open("x", bad)
    cfg = tmp_path / "symbiotic.yaml"
    cfg.write_text(f"repositories:\n  - path: '{bad}'\n")
    with pytest.raises(ConfigError, match=r"repositories\[0\].*refused"):
        load_settings(cfg)
    assert not (tmp_path / "pwned").exists()


def test_empty_repository(tmp_path: Path):
    GitRepoBuilder(tmp_path / "empty")
    r, m = run_all(tmp_path / "w.duckdb", RepositorySpec("empty", tmp_path / "empty"))
    assert (r.new_commits, r.reachable_commits, m.examined) == (0, 0, 0)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT commit_count, head_hash FROM git.repositories").fetchone() == (
            0,
            None,
        )


def test_shallow_clone_records_missing_merge_parents(tmp_path: Path):
    info = build_standard_repo(tmp_path / "src")
    subprocess.run(
        [
            "git",
            "clone",
            "-q",
            "--depth",
            "1",
            f"file://{tmp_path / 'src'}",
            str(tmp_path / "shallow"),
        ],
        check=True,
        capture_output=True,
    )
    b: GitRepoBuilder = info["builder"]
    del b
    r, _ = run_all(tmp_path / "w.duckdb", RepositorySpec("shallow", tmp_path / "shallow"))
    assert r.is_shallow
    assert r.reachable_commits == git_count(tmp_path / "shallow") == 1


def test_shallow_clone_with_merge_at_boundary(tmp_path: Path):
    build_standard_repo(tmp_path / "src")
    subprocess.run(
        ["git", "clone", "-q", "--depth", "3", "--no-single-branch", f"file://{tmp_path / 'src'}",
         str(tmp_path / "shallow")],
        check=True, capture_output=True,
    )  # fmt: skip
    r, m = run_all(tmp_path / "w.duckdb", RepositorySpec("shallow", tmp_path / "shallow"))
    assert r.reachable_commits == git_count(tmp_path / "shallow")
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        statuses = dict(
            con.execute("SELECT status, count(*) FROM git.merges GROUP BY 1").fetchall()
        )
    # every merge got a verdict; a parent cut off by the shallow boundary is said so
    assert sum(statuses.values()) == m.examined
    assert set(statuses) <= {"clean", "conflict", "parent_missing"}


def test_detached_head_commits_are_history(tmp_path: Path):
    b = GitRepoBuilder(tmp_path / "r")
    first = b.commit("one", "2024-01-01T00:00:00+0000", ALICE, {"a": "1"})
    b.commit("two", "2024-01-02T00:00:00+0000", ALICE, {"a": "2"})
    b.checkout(first)
    dangling = b.commit("on detached head", "2024-01-03T00:00:00+0000", BOB, {"b": "1"})
    r, _ = run_all(tmp_path / "w.duckdb", RepositorySpec("r", tmp_path / "r"))
    assert r.reachable_commits == 3 == git_count(tmp_path / "r")
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT head_ref, head_hash FROM git.repositories").fetchone() == (
            None,
            dangling,
        )


def test_non_utf8_identity_and_message(tmp_path: Path):
    b = GitRepoBuilder(tmp_path / "r")
    b.commit("base", "2024-01-01T00:00:00+0000", ALICE, {"a": "1"})
    tree = b.git("rev-parse", "HEAD^{tree}").strip()
    parent = b.head()
    env = {k.encode(): v.encode() for k, v in b.env.items()}
    env.update(
        {
            b"GIT_AUTHOR_NAME": b"Jos\xe9 M\xfcller",
            b"GIT_AUTHOR_EMAIL": b"jose@example.com",
            b"GIT_COMMITTER_NAME": b"Jos\xe9 M\xfcller",
            b"GIT_COMMITTER_EMAIL": b"jose@example.com",
            b"GIT_AUTHOR_DATE": b"2024-01-02T00:00:00+0000",
            b"GIT_COMMITTER_DATE": b"2024-01-02T00:00:00+0000",
        }
    )
    out = subprocess.run(
        ["git", "commit-tree", tree, "-p", parent],
        cwd=b.path,
        env=env,
        input=b"Caf\xe9 cr\xe8me fix\n",
        capture_output=True,
        check=True,
    )
    b.git("update-ref", "refs/heads/main", out.stdout.decode().strip())
    run_all(tmp_path / "w.duckdb", RepositorySpec("r", tmp_path / "r"))
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        row = con.execute(
            "SELECT author_name, subject FROM git.commits WHERE subject LIKE 'Caf%'"
        ).fetchone()
    assert row == ("José Müller", "Café crème fix")


def test_huge_commit(tmp_path: Path):
    b = GitRepoBuilder(tmp_path / "r")
    b.commit(
        "big",
        "2024-01-01T00:00:00+0000",
        ALICE,
        {f"d{i % 50}/f{i}.txt": f"{i}\n" * 3 for i in range(6000)},
    )
    r, _ = run_all(tmp_path / "w.duckdb", RepositorySpec("r", tmp_path / "r"))
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT files_changed, insertions FROM git.commits").fetchone() == (
            6000,
            18000,
        )
        assert con.execute("SELECT count(*) FROM git.commit_files").fetchone() == (6000,)


def test_submodule(tmp_path: Path):
    lib = GitRepoBuilder(tmp_path / "lib")
    lib.commit("lib", "2024-01-01T00:00:00+0000", ALICE, {"lib.py": "x = 1\n"})
    app = GitRepoBuilder(tmp_path / "app")
    app.commit("app", "2024-01-01T00:00:00+0000", ALICE, {"app.py": "y = 1\n"})
    app.git(
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        str(tmp_path / "lib"),
        "vendor/lib",
    )
    app.git("commit", "-q", "-m", "add submodule", date="2024-01-02T00:00:00+0000", who=BOB)
    r, _ = run_all(tmp_path / "w.duckdb", RepositorySpec("app", tmp_path / "app"))
    assert r.reachable_commits == 2 == git_count(tmp_path / "app")
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        paths = {p for (p,) in con.execute("SELECT path FROM git.commit_files").fetchall()}
    assert {".gitmodules", "vendor/lib"} <= paths  # the gitlink is a change like any other


def test_repository_without_reflog_reports_unknown_switches(tmp_path: Path):
    build_standard_repo(tmp_path / "src")
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(tmp_path / "src"), str(tmp_path / "bare.git")],
        check=True,
    )
    r, m = run_all(tmp_path / "w.duckdb", RepositorySpec("bare", tmp_path / "bare.git"))
    assert not r.has_reflog
    assert r.reachable_commits == 10 and (m.clean, m.conflict) == (1, 1)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT is_bare, has_reflog FROM git.repositories").fetchone() == (
            True,
            False,
        )
        switches = con.execute("SELECT count(*) FROM git.ref_events WHERE is_switch").fetchone()
    assert switches == (0,)  # no event; the marts report it as unknown because has_reflog is false


def test_subdirectory_of_a_repository_is_refused_with_the_top_level(tmp_path: Path):
    b = GitRepoBuilder(tmp_path / "r")
    b.commit("one", "2024-01-01T00:00:00+0000", ALICE, {"sub/a": "1"})
    with pytest.raises(RepositoryError, match="not its top level"):
        GitRepository.open("sub", tmp_path / "r" / "sub")


def test_environment_variables_do_not_leak_into_other_tests():
    assert "GIT_OBJECT_DIRECTORY" not in os.environ
