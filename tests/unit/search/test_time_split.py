"""The time-split copy: hashes map to the same trees, and no test PR title survives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from gitrepo import ALICE, BOB, GitRepoBuilder

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from benchmarks.time_split import build_time_split, find_pulls  # noqa: E402

# (title, branch commits) merged with GitHub's merge message; one PR commit repeats its title
PULLS = [
    ("Retry with exponential backoff", ["Add backoff helper", "Use backoff in the client"]),
    ("Fix unicode filenames on Windows", ["Decode paths", "Fix unicode filenames on Windows"]),
    ("Document the proxy settings", ["Docs: proxies section"]),
    ("Speed up header parsing", ["Parse headers with one regex"]),
]
SQUASHED = ["Cache compiled header regexes", "Stream large uploads in chunks"]


def _log(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(repo), "log", *args], capture_output=True, text=True,
                         check=True)  # fmt: skip
    return out.stdout


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> GitRepoBuilder:
    repo = GitRepoBuilder(tmp_path_factory.mktemp("split") / "project")
    repo.commit("Initial commit", "2024-01-01T00:00:00+0000", ALICE, {"README.md": "hello\n"})
    for n, (title, subjects) in enumerate(PULLS, start=1):
        day = f"2024-02-{n:02d}"
        repo.checkout("-b", f"topic-{n}")
        for k, subject in enumerate(subjects):
            repo.commit(subject, f"{day}T1{k}:00:00+0000", BOB, {f"src/m{n}.py": f"{subject}\n"})
        repo.checkout("main")
        repo.merge(f"topic-{n}", f"Merge pull request #{100 + n} from bob/topic-{n}\n\n{title}",
                   f"{day}T13:00:00+0000", ALICE)  # fmt: skip
    for n, title in enumerate(SQUASHED, start=1):
        repo.commit(f"{title} (#{200 + n})", f"2024-03-{n:02d}T10:00:00+0000", BOB,
                    {f"src/s{n}.py": "x\n"})  # fmt: skip
    # a later commit quoting the newest merge PR's title: must lose the quote
    repo.commit('Revert part of "Speed up header parsing"', "2024-03-05T10:00:00+0000", ALICE,
                {"src/m4.py": "back\n"})  # fmt: skip
    return repo


def test_split_maps_hashes_and_removes_every_test_title(
    source: GitRepoBuilder, tmp_path: Path
) -> None:
    before = {p.title: p for p in find_pulls(source.path, "refs/heads/main")}
    assert len(before) == len(PULLS) + len(SQUASHED)
    split = build_time_split(source.path, tmp_path / "split.git", test_share=0.5)
    test_titles = {p.title for p in split.test}
    # the newest half, by merge time: the last two merges' successors are the squashes
    assert test_titles == {"Speed up header parsing", *SQUASHED}
    assert {p.title for p in split.train} == {t for t, _ in PULLS[:3]}

    # every commit maps to one with the same tree, author and date
    assert len(split.old_to_new) == int(source.git("rev-list", "--count", "HEAD"))
    for old, new in split.old_to_new.items():
        o = source.git("show", "-s", "--format=%T %an %ad", old).strip()
        n = _log(split.path, "-1", "--format=%T %an %ad", new).strip()
        assert o == n
    # PR membership survives the rewrite, through the map
    for p in split.pulls:
        assert p.members == [split.old_to_new[h] for h in before[p.title].members]

    # no test title anywhere in the rewritten history (case-insensitive) ...
    messages = _log(split.path, "--format=%H%x00%B%x1e", split.branch).split("\x1e")
    for rec in filter(str.strip, messages):
        commit, message = rec.strip().split("\x00", 1)
        for title in test_titles:
            assert title.lower() not in message.lower(), (commit, title)
    # ... while the train titles stay (they are what the ranker learns from)
    text = _log(split.path, "--format=%B", split.branch)
    for title, _ in PULLS[:3]:
        assert title in text
    # the test merge keeps its PR number and branch; squash commits keep (#N)
    assert "Merge pull request #104 from bob/topic-4" in text
    assert "(#201)" in text and "(#202)" in text


def test_split_refuses_an_existing_target(source: GitRepoBuilder, tmp_path: Path) -> None:
    (tmp_path / "there").mkdir()
    with pytest.raises(FileExistsError, match="new folder"):
        build_time_split(source.path, tmp_path / "there")
