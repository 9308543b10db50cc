"""Our re-merges give plain ``git merge-tree``'s verdicts, merge by merge.

Ours run in a scratch repository with a commit-graph, a bare environment and a thread
pool (and ``--stdin`` batches on git 2.42+); plain runs ``git merge-tree`` in the
repository itself. Status, unrelated-histories flag and conflicted paths must be equal
on every two-parent merge of the test repositories, a generated history with renames,
deletions, binary files and conflicts of every kind the generator makes, and this
project's own history.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import duckdb
import pytest
from analytics_repos import build_alpha, build_beta
from gitrepo import ALICE, BOB, GitRepoBuilder, build_standard_repo

from benchmarks.bench_merges import plain_merge_tree, run_ours, two_parent_merges
from benchmarks.synthetic_repo import build_synthetic_repo
from symbiotic_assets.core.config import RepositorySpec
from symbiotic_assets.git.extract import refresh_repository
from symbiotic_assets.git.merges import (
    ScratchMerger,
    detect_merge_conflicts,
    parse_stdin_output,
)
from symbiotic_assets.git.repository import GitRepository, scratch_repository


def build_unrelated(path: Path) -> None:
    """Two histories with no common commit, merged (and one conflicting file)."""
    b = GitRepoBuilder(path)
    b.commit("one", "2024-06-01T10:00:00+0000", ALICE, {"a.txt": "a\n", "same.txt": "x\n"})
    b.git("checkout", "-q", "--orphan", "other")
    b.git("rm", "-q", "-rf", ".")
    b.commit("two", "2024-06-01T11:00:00+0000", BOB, {"b.txt": "b\n", "same.txt": "y\n"})
    b.git("checkout", "-q", "main")
    b.git("merge", "-q", "--allow-unrelated-histories", "-m", "join", "other", check=False,
          date="2024-06-01T12:00:00+0000", who=ALICE)  # fmt: skip
    b.git("checkout", "-q", "--theirs", "same.txt")
    b.git("commit", "-q", "-a", "--no-edit", date="2024-06-01T12:00:00+0000", who=ALICE)


def _repos(root: Path) -> dict[str, Path]:
    build_standard_repo(root / "standard")
    build_alpha(root / "alpha")
    build_beta(root / "beta")
    build_unrelated(root / "unrelated")
    build_synthetic_repo(root / "synthetic", 1500, seed=5)
    return {name: root / name for name in ("standard", "alpha", "beta", "unrelated", "synthetic")}


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # this project's own history has no merge commit, so it would compare nothing
    return _repos(tmp_path_factory.mktemp("parity"))


def _plain_verdicts(path: Path, tmp: Path, merges: list[tuple[str, str, str]]) -> list:
    tmp.mkdir(parents=True, exist_ok=True)
    return [plain_merge_tree(path, tmp, p1, p2)[:3] for _, p1, p2 in merges]


@pytest.mark.parametrize("name", ["standard", "alpha", "beta", "unrelated", "synthetic"])
def test_verdicts_equal_plain_merge_tree(name: str, repos: dict[str, Path], tmp_path: Path):
    path = repos[name]
    merges = two_parent_merges(path)
    assert merges, f"{name} has no two-parent merge to compare"
    plain = _plain_verdicts(path, tmp_path / "plain-objects", merges)
    repo = GitRepository.open(name, path)
    with scratch_repository(repo) as scratch:
        merger = ScratchMerger(scratch)
        merger.write_commit_graph(sorted({p for _, p1, p2 in merges for p in (p1, p2)}))
        ours = [v[:3] for v in run_ours(merger, [(p1, p2) for _, p1, p2 in merges], 2)]
    assert ours == plain
    if name == "synthetic":  # the generator's conflicts are there, so the comparison bites
        assert sum(v[0] == "conflict" for v in plain) > 10
        assert sum(v[0] == "clean" for v in plain) > 10
    if name == "unrelated":
        assert plain == [("conflict", True, ["same.txt"])]


def test_stdin_batches_fall_back_merge_by_merge(repos: dict[str, Path], tmp_path: Path):
    """Forced ``--stdin``: on a git without it every batch fails at its first merge, which
    is then re-merged alone; verdicts stay those of plain git (on 2.42+ this runs the
    batches themselves, unrelated histories included)."""
    for name in ("standard", "unrelated"):
        path = repos[name]
        merges = two_parent_merges(path)
        with scratch_repository(GitRepository.open(name, path)) as scratch:
            merger = ScratchMerger(scratch, use_stdin=True)
            ours = [v[:3] for v in merger.merge_many([(p1, p2) for _, p1, p2 in merges])]
        assert ours == _plain_verdicts(path, tmp_path / name, merges)


def test_parse_stdin_output():
    tree = b"0" * 40
    out = b"1\0" + tree + b"\0\0" + b"0\0" + tree + b"\0a.txt\0dir/b\xc3\xa9.txt\0a.txt\0\0"
    assert parse_stdin_output(out) == [(True, []), (False, ["a.txt", "dir/bé.txt"])]
    # a record cut short by a dying process is left out, complete ones are kept
    assert parse_stdin_output(out + b"0\0" + tree + b"\0c.txt\0") == parse_stdin_output(out)
    assert parse_stdin_output(b"") == []
    assert parse_stdin_output(b"fatal: refusing to merge unrelated histories\n") == []


def test_detect_merge_conflicts_stores_plain_verdicts(repos: dict[str, Path], tmp_path: Path):
    path = repos["synthetic"]
    warehouse = tmp_path / "w.duckdb"
    spec = RepositorySpec(name="synthetic", path=path)
    refresh_repository(str(warehouse), spec)
    result = detect_merge_conflicts(str(warehouse), spec, workers=2)
    assert "commit-graph" in result.method  # above COMMIT_GRAPH_MIN_MERGES merges
    merges = two_parent_merges(path)
    plain = dict(zip((m for m, _, _ in merges), _plain_verdicts(path, tmp_path / "p", merges),
                     strict=True))  # fmt: skip
    with duckdb.connect(str(warehouse), read_only=True) as con:
        stored = con.execute(
            "SELECT merge_hash, status, unrelated_histories, conflicted_paths FROM git.merges "
            "WHERE merge_kind = 'two_parent'"
        ).fetchall()
    assert {m: (s, u, list(p)) for m, s, u, p in stored} == plain
    assert result.clean + result.conflict == len(plain) and result.verdict_unknown == 0


def test_damaged_clone_gets_unknown_verdict_then_retried(tmp_path: Path):
    """A merge whose objects are missing is stored as unknown (status error, has_conflict
    NULL), counted, and re-merged once the clone is repaired: one row, never two."""
    info = build_standard_repo(tmp_path / "repo")
    b, m2 = info["builder"], info["commits"]["m2"]
    warehouse = tmp_path / "w.duckdb"
    spec = RepositorySpec(name="damaged", path=b.path)
    refresh_repository(str(warehouse), spec)
    # the merge base's copy of the file both sides changed
    base = b.git("merge-base", f"{m2}^1", f"{m2}^2").strip()
    blob = b.git("rev-parse", f"{base}:src/application.py").strip()
    loose = b.path / ".git" / "objects" / blob[:2] / blob[2:]
    saved = loose.read_bytes()
    loose.unlink()

    first = detect_merge_conflicts(str(warehouse), spec)
    assert (first.examined, first.clean, first.errors, first.verdict_unknown) == (2, 1, 1, 1)
    query = "SELECT status, has_conflict, detail FROM git.merges WHERE merge_hash = ?"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        status, has_conflict, detail = con.execute(query, [m2]).fetchone()  # type: ignore[misc]
    assert (status, has_conflict) == ("error", None)
    assert blob[:7] in detail or "unable to read" in detail or "object" in detail

    loose.write_bytes(saved)
    second = detect_merge_conflicts(str(warehouse), spec)
    assert (second.examined, second.conflict, second.errors) == (1, 1, 0)
    third = detect_merge_conflicts(str(warehouse), spec)
    assert third.examined == 0
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute(query, [m2]).fetchall() == [("conflict", True, None)]
        assert con.execute("SELECT count(*) FROM git.merges").fetchone() == (2,)


def test_merge_git_variable_is_checked(monkeypatch: pytest.MonkeyPatch, repos: dict[str, Path]):
    """``SYMBIOTIC_MERGE_GIT`` picks the git that re-merges; a bad value is refused by name."""
    import shutil

    from symbiotic_assets.git.merges import MERGE_GIT_ENV, merge_git

    monkeypatch.setenv(MERGE_GIT_ENV, "git")
    with pytest.raises(RuntimeError, match="SYMBIOTIC_MERGE_GIT='git' is not an absolute path"):
        merge_git()
    monkeypatch.setenv(MERGE_GIT_ENV, str(repos["standard"] / "README.md"))
    with pytest.raises(RuntimeError, match="not an absolute path to an executable"):
        merge_git()
    system_git = shutil.which("git")
    assert system_git
    monkeypatch.setenv(MERGE_GIT_ENV, system_git)
    assert merge_git() == system_git
    with scratch_repository(GitRepository.open("standard", repos["standard"])) as scratch:
        merger = ScratchMerger(scratch)
        assert merger.executable == system_git
        assert "git 2." in merger.describe(False)


def test_sha256_and_shared_clones(tmp_path: Path):
    """The scratch repository takes the object format of the repository, and follows the
    repository's own alternates (a ``clone --shared`` has none of the objects itself)."""
    subprocess.run(["git", "init", "-q", "--object-format=sha256", "-b", "main",
                    str(tmp_path / "sha256")], check=True, capture_output=True)  # fmt: skip
    b = GitRepoBuilder(tmp_path / "sha256")  # re-initialising keeps the format
    b.commit("base", "2024-07-01T10:00:00+0000", ALICE, {"f.txt": "a\nb\n"})
    b.git("branch", "side")
    b.commit("main", "2024-07-01T11:00:00+0000", ALICE, {"f.txt": "main\nb\n"})
    b.checkout("side")
    b.commit("side", "2024-07-01T12:00:00+0000", BOB, {"f.txt": "side\nb\n"})
    b.checkout("main")
    assert b.merge("side", "Merge side", "2024-07-01T13:00:00+0000", ALICE) is True
    shared = tmp_path / "shared"
    subprocess.run(["git", "clone", "-q", "--shared", str(b.path), str(shared)], check=True,
                   env=b.env, capture_output=True)  # fmt: skip
    assert (shared / ".git" / "objects" / "info" / "alternates").is_file()
    for path in (b.path, shared):
        merges = two_parent_merges(path)
        assert len(merges) == 1 and len(merges[0][0]) == 64
        with scratch_repository(GitRepository.open(path.name, path)) as scratch:
            ours = [v[:3] for v in run_ours(ScratchMerger(scratch), [m[1:] for m in merges], 2)]
        assert ours == _plain_verdicts(path, tmp_path / f"plain-{path.name}", merges)
        assert ours == [("conflict", False, ["f.txt"])]
