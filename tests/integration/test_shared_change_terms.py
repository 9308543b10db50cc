"""Change terms and PR groups of shared commits are copied by id, and equal computed ones.

Real repositories built with git (clones of one history, a fork with more work, a
shallow clone), a real DuckDB file, the real ``git log -p``. Copies are compared with
what the same repository gets in a warehouse of its own.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest
from gitrepo import ALICE, BOB, CAROL, GitRepoBuilder

from symbiotic_assets.core.config import RepositorySpec
from symbiotic_assets.git.extract import refresh_repository
from symbiotic_assets.git.repository import GitRepository
from symbiotic_assets.search.change_terms import refresh_change_terms

CODE = """\
class Client:
    def send_request(self, url):
        return self.transport.open(url)

    def close_session(self):
        self.transport.close()
"""


class CountingRepository(GitRepository):
    """The real repository; it also records every git command it starts."""

    calls: list[tuple[list[str], list[str] | None]]

    @classmethod
    def of(cls, name: str, path: Path) -> CountingRepository:
        base = GitRepository.open(name, path)
        repo = cls(base.name, base.path, base.git_dir, base.is_bare)
        repo.calls = []
        return repo

    def run(self, args: Sequence[str], **kw: Any) -> tuple[int, bytes, bytes]:
        self.calls.append((list(args), None))
        return super().run(args, **kw)

    def stream(self, args: Sequence[str], stdin_lines: Sequence[str] | None = None) -> Iterator[bytes]:  # fmt: skip
        self.calls.append((list(args), list(stdin_lines) if stdin_lines is not None else None))
        return super().stream(args, stdin_lines)


def _build(path: Path) -> GitRepoBuilder:
    """PRs merged into main, a PR merged into a release branch, a PR merged into a branch
    that was merged in turn, a squash merge; Python code, so hunks name functions."""
    b = GitRepoBuilder(path)
    b.commit("Initial commit", "2024-01-01T09:00:00+0000", ALICE, {"client.py": CODE})
    b.checkout("-b", "retry")
    b.commit("Retry failed sends", "2024-01-02T09:00:00+0000", BOB,
             {"client.py": CODE.replace("return self.transport.open(url)",
                                        "return retry_with_backoff(self.transport.open, url)")})  # fmt: skip
    b.checkout("main")
    b.commit("Notes", "2024-01-02T10:00:00+0000", ALICE, {"notes.md": "notes\n"})
    b.merge("retry", "Merge pull request #1 from bob/retry\n\nRetry sends",
            "2024-01-02T11:00:00+0000", ALICE)  # fmt: skip
    b.checkout("-b", "release", "main")
    b.checkout("-b", "hotfix")
    b.commit("Close quietly", "2024-01-03T09:00:00+0000", CAROL,
             {"client.py": CODE.replace("self.transport.close()", "quiet_close(self.transport)")})  # fmt: skip
    b.checkout("release")
    b.merge("hotfix", "Merge pull request #2 from carol/hotfix\n\nClose quietly",
            "2024-01-03T10:00:00+0000", CAROL)  # fmt: skip
    b.checkout("-b", "big", "main")
    b.checkout("-b", "part")
    b.commit("Part of the big change", "2024-01-04T09:00:00+0000", BOB, {"big.py": "def part_one():\n    pass\n"})  # fmt: skip
    b.checkout("big")
    b.commit("Big change starts", "2024-01-04T10:00:00+0000", BOB, {"big2.py": "def start_big():\n    pass\n"})  # fmt: skip
    b.merge("part", "Merge pull request #3 from bob/part\n\nPart", "2024-01-04T11:00:00+0000", BOB)
    b.checkout("main")
    b.merge("big", "Merge pull request #4 from bob/big\n\nBig", "2024-01-04T12:00:00+0000", ALICE)
    b.commit("Add timeouts (#5)", "2024-01-05T09:00:00+0000", ALICE, {"timeouts.py": "def set_timeout(seconds):\n    pass\n"})  # fmt: skip
    return b


def _rows(con: duckdb.DuckDBPyConnection, repository: str) -> tuple[list[Any], list[Any]]:
    terms = con.execute(
        "SELECT hash, functions, identifiers, version FROM search.change_terms "
        "WHERE repository = ? ORDER BY hash",
        [repository],
    ).fetchall()
    groups = con.execute(
        "SELECT group_hash, pr_number, branch, title, commit_hash FROM search.change_groups "
        "WHERE repository = ? ORDER BY ALL",
        [repository],
    ).fetchall()
    return terms, groups


def _clone(source: Path, dest: Path, *extra: str) -> Path:
    subprocess.run(["git", "clone", "-q", "--no-local", *extra, f"file://{source}", str(dest)],
                   check=True, capture_output=True)  # fmt: skip
    for ref in ("release", "big"):  # every branch as a local one, like the source
        subprocess.run(["git", "-C", str(dest), "branch", "-q", ref, f"origin/{ref}"],
                       check=False, capture_output=True)  # fmt: skip
    return dest


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("shared-changes")
    std = _build(root / "std")
    same = _clone(std.path, root / "same")
    more = GitRepoBuilder(_clone(std.path, root / "more"))  # a fork with work of its own
    more.checkout("-b", "extra")
    more.commit("Fork-only work", "2024-02-01T09:00:00+0000", BOB,
                {"client.py": CODE.replace("def close_session", "def shutdown_session")})  # fmt: skip
    more.checkout("main")
    more.merge("extra", "Merge pull request #9 from bob/extra\n\nRename",
               "2024-02-01T10:00:00+0000", BOB)  # fmt: skip
    shallow = _clone(std.path, root / "shallow", "--depth", "2")
    return {"std": std.path, "same": same, "more": more.path, "shallow": shallow}


def _warehouse(path: Path, repos: dict[str, Path], names: Sequence[str]) -> Path:
    for name in names:
        refresh_repository(path, RepositorySpec(name, repos[name]))
    return path


def test_a_clone_copies_every_term_and_group_and_starts_no_git(repos, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = _warehouse(tmp_path / "shared.duckdb", repos, ["std", "same"])
    with duckdb.connect(str(db)) as con:
        first = refresh_change_terms(con, GitRepository.open("std", repos["std"]), "std")
        same = CountingRepository.of("same", repos["same"])
        copied = refresh_change_terms(con, same, "same")
        again = refresh_change_terms(con, same, "same")
        std_rows, same_rows = _rows(con, "std"), _rows(con, "same")
    assert first.commits == 7 and first.groups == 5 and first.reused_commits == 0
    assert copied.commits == 0 and copied.groups == 0
    assert copied.reused_commits == 7 and copied.reused_group_rows == len(std_rows[1])
    assert same.calls == []  # no git log -p, no rev-list: nothing was computed
    assert again.reused_commits == 0 and again.reused_group_rows == 0 and again.commits == 0
    assert same_rows == std_rows
    # the groups are the PRs' own commits: #3 merged into a branch, #2 into a release branch
    members: dict[int, set[str]] = {}
    for _, number, _, _, commit in std_rows[1]:
        members.setdefault(number, set()).add(commit)
    subjects = dict(
        line.split(" ", 1)
        for line in subprocess.run(["git", "-C", str(repos["std"]), "log", "--all", "--format=%H %s"],
                                   capture_output=True, text=True, check=True).stdout.splitlines()
    )  # fmt: skip
    named = {n: sorted(subjects[h] for h in hs) for n, hs in members.items()}
    assert named == {1: ["Retry failed sends"], 2: ["Close quietly"],
                     3: ["Part of the big change"],
                     4: ["Big change starts", "Part of the big change"],
                     5: ["Add timeouts (#5)"]}  # fmt: skip
    functions = {h: f for h, f, _, _ in std_rows[0]}
    retry = next(h for h, s in subjects.items() if s == "Retry failed sends")
    assert functions[retry] == ["send_request"]


def test_a_fork_reads_only_its_own_commits_and_equals_a_warehouse_of_its_own(
    repos, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    db = _warehouse(tmp_path / "shared.duckdb", repos, ["std", "more"])
    with duckdb.connect(str(db)) as con:
        refresh_change_terms(con, GitRepository.open("std", repos["std"]), "std")
        more = CountingRepository.of("more", repos["more"])
        result = refresh_change_terms(con, more, "more")
        shared = _rows(con, "more")
        own_commit = con.execute(
            "SELECT hash FROM git.commits WHERE repository = 'more' AND subject = 'Fork-only work'"
        ).fetchone()
    assert result.reused_commits == 7 and result.commits == 1 and result.groups == 1
    diffs = [stdin for args, stdin in more.calls if "-p" in args]
    assert own_commit is not None and diffs == [[own_commit[0]]]  # one git log -p, one commit
    assert not [args for args, _ in more.calls if "rev-list" in args]
    alone = _warehouse(tmp_path / "alone.duckdb", repos, ["more"])
    with duckdb.connect(str(alone)) as con:
        computed = refresh_change_terms(con, GitRepository.open("more", repos["more"]), "more")
        own = _rows(con, "more")
    assert computed.commits == 8 and computed.reused_commits == 0
    assert shared == own


def test_terms_ignore_the_repositorys_attributes_and_diff_config(repos, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """What a commit's terms are cannot depend on which clone read them, or copying would
    spread one clone's settings: here one clone marks a Python file as binary and matches no
    hunk header through its own config."""
    odd = _clone(repos["std"], tmp_path / "odd")
    (odd / ".git" / "info" / "attributes").write_text("client.py -diff\n")
    subprocess.run(
        ["git", "-C", str(odd), "config", "diff.python.xfuncname", "^(never)$"], check=True
    )
    terms = {}
    for name, path in (("std", repos["std"]), ("odd", odd)):  # each in a warehouse of its own
        db = _warehouse(tmp_path / f"{name}.duckdb", {name: path}, [name])
        with duckdb.connect(str(db)) as con:
            refresh_change_terms(con, GitRepository.open(name, path), name)
            terms[name] = _rows(con, name)[0]
    assert terms["odd"] == terms["std"]
    assert any(f for _, f, _, _ in terms["odd"]) and any(i for _, _, i, _ in terms["odd"])


def test_a_shallow_clone_neither_lends_nor_borrows(repos, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = _warehouse(tmp_path / "w.duckdb", repos, ["std", "shallow"])
    with duckdb.connect(str(db)) as con:
        refresh_change_terms(con, GitRepository.open("std", repos["std"]), "std")
        result = refresh_change_terms(
            con, GitRepository.open("shallow", repos["shallow"]), "shallow"
        )
    assert result.reused_commits == 0 and result.reused_group_rows == 0 and result.commits > 0
