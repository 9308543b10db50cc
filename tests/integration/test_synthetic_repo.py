"""The benchmark's generated repository is what it claims to be, by git's own account."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from benchmarks.synthetic_repo import SyntheticRepo, append_commits, build_synthetic_repo

COMMITS = 300


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> SyntheticRepo:
    return build_synthetic_repo(tmp_path_factory.mktemp("synthetic") / "repo", COMMITS, seed=3)


def test_commit_and_merge_counts_match_git(synthetic: SyntheticRepo) -> None:
    assert synthetic.commits == COMMITS
    assert git(synthetic.path, "rev-list", "--all", "--count").stdout.strip() == str(COMMITS)
    merges = git(synthetic.path, "rev-list", "--merges", "--all", "--count").stdout.strip()
    assert int(merges) == synthetic.merges
    assert synthetic.merges == synthetic.two_parent_merges + synthetic.octopus_merges
    assert synthetic.conflicting_merges > 0 and synthetic.clean_merges > 0
    assert synthetic.octopus_merges == 2


def test_merge_hashes_are_the_repositorys_merges(synthetic: SyntheticRepo) -> None:
    listed = git(synthetic.path, "rev-list", "--all", "--merges", "--parents").stdout.split("\n")
    parents = {line.split()[0]: len(line.split()) - 1 for line in listed if line}
    two = set(synthetic.conflicting_merge_hashes) | set(synthetic.clean_merge_hashes)
    assert two == {h for h, n in parents.items() if n == 2}
    assert set(synthetic.octopus_merge_hashes) == {h for h, n in parents.items() if n > 2}


def test_fsck_is_clean(synthetic: SyntheticRepo) -> None:
    proc = git(synthetic.path, "fsck", "--strict")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "" and "dangling" not in proc.stderr, proc.stdout + proc.stderr


def _merge_tree(repo: Path, merge: str) -> int:
    return git(repo, "merge-tree", "--write-tree", f"{merge}^1", f"{merge}^2").returncode


def test_conflicts_are_real_and_clean_merges_are_clean(synthetic: SyntheticRepo) -> None:
    repo = synthetic.path
    with ThreadPoolExecutor(max_workers=4) as pool:
        conflicting = list(
            pool.map(lambda h: _merge_tree(repo, h), synthetic.conflicting_merge_hashes)
        )
        clean = list(pool.map(lambda h: _merge_tree(repo, h), synthetic.clean_merge_hashes))
    assert conflicting == [1] * synthetic.conflicting_merges
    assert clean == [0] * synthetic.clean_merges


def test_history_has_the_variety_extraction_must_handle(synthetic: SyntheticRepo) -> None:
    repo = synthetic.path
    offsets = set(git(repo, "log", "--all", "--format=%ad", "--date=format:%z").stdout.split())
    assert any(o.startswith("-") for o in offsets) and any(o.startswith("+") for o in offsets)
    assert "-0330" in offsets  # a negative half-hour offset
    authors = set(git(repo, "log", "--all", "--format=%an").stdout.splitlines())
    assert "dependabot[bot]" in authors
    log = git(repo, "log", "--all", "--numstat", "-M", "--format=").stdout
    assert "-\t-\t" in log  # binary files
    assert "=>" in log  # renames
    tags = git(repo, "tag").stdout.split()
    assert len(tags) == synthetic.tags >= 3
    switches = git(repo, "reflog", "show", "HEAD").stdout
    assert "checkout: moving from main to develop" in switches


def test_same_seed_same_history(tmp_path: Path) -> None:
    a = build_synthetic_repo(tmp_path / "a", 120, seed=9)
    b = build_synthetic_repo(tmp_path / "b", 120, seed=9)
    assert git(a.path, "rev-parse", "main").stdout == git(b.path, "rev-parse", "main").stdout
    assert a.conflicting_merge_hashes == b.conflicting_merge_hashes


def test_append_commits_extends_main_only_for_generated_repositories(tmp_path: Path) -> None:
    small = build_synthetic_repo(tmp_path / "small", 60, seed=2)
    tip = append_commits(small.path, 5)
    assert git(small.path, "rev-list", "--all", "--count").stdout.strip() == "65"
    assert git(small.path, "rev-parse", "main").stdout.strip() == tip
    assert git(small.path, "status", "--porcelain").stdout == ""

    plain = tmp_path / "plain"
    subprocess.run(["git", "init", "-q", str(plain)], check=True)
    with pytest.raises(ValueError, match="not generated"):
        append_commits(plain, 1)


def test_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "file.txt").write_text("x")
    with pytest.raises(FileExistsError):
        build_synthetic_repo(tmp_path / "occupied", 10)
