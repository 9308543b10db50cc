"""PR membership from the commit graph equals git's own ``rev-list P2 ^P1`` per merge."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitrepo import ALICE, BOB, GitRepoBuilder

from symbiotic_assets.search.change_terms import branch_words, hunk_function, mainline_members


def test_mainline_members_match_git_rev_list(tmp_path: Path) -> None:
    b = GitRepoBuilder(tmp_path / "repo")
    b.commit("A", "2024-01-01T00:00:00+0000", ALICE, {"a.txt": "a\n"})
    b.checkout("-b", "one")
    b.commit("B1", "2024-01-02T00:00:00+0000", BOB, {"b.txt": "1\n"})
    b.checkout("main")
    b.commit("C", "2024-01-03T00:00:00+0000", ALICE, {"c.txt": "c\n"})
    b.checkout("one")  # the branch takes main in before it is merged: C is not the PR's
    b.merge("main", "Merge branch 'main' into one", "2024-01-04T00:00:00+0000", BOB)
    b.commit("B2", "2024-01-05T00:00:00+0000", BOB, {"b.txt": "2\n"})
    b.checkout("-b", "two", "main")
    b.commit("D1", "2024-01-06T00:00:00+0000", BOB, {"d.txt": "1\n"})
    b.checkout("main")
    b.merge("one", "Merge pull request #1 from bob/one\n\nOne", "2024-01-07T00:00:00+0000", ALICE)
    b.commit("E", "2024-01-08T00:00:00+0000", ALICE, {"e.txt": "e\n"})
    b.merge("two", "Merge pull request #2 from bob/two\n\nTwo", "2024-01-09T00:00:00+0000", ALICE)
    graph = [line.split() for line in b.git("log", "--all", "--format=%H %P").splitlines()]
    parents = {g[0]: g[1:] for g in graph}
    is_merge = {h: len(p) > 1 for h, p in parents.items()}
    got = mainline_members(parents, is_merge, b.head())
    merges = [h for h in b.git("rev-list", "--first-parent", "--merges", "HEAD").split()]
    assert set(got) == set(merges) and len(merges) == 2
    for m in merges:
        p1, p2 = parents[m]
        expected = set(b.git("rev-list", "--no-merges", p2, f"^{p1}").split())
        assert set(got[m]) == expected
    subjects = {h: b.git("show", "-s", "--format=%s", h).strip() for h in parents}
    assert sorted(subjects[h] for m in merges for h in got[m]) == ["B1", "B2", "D1"]


def test_hunk_headers_and_branch_words() -> None:
    assert hunk_function("def resolve_redirect_target(self, resp):") == "resolve_redirect_target"
    assert hunk_function("class HTTPAdapter(BaseAdapter):") == "HTTPAdapter"
    assert hunk_function("func (c *Command) Execute() error {") == "Execute"
    assert hunk_function("export function parseHeaders(raw) {") == "parseHeaders"
    assert hunk_function("## Installation") is None
    assert branch_words("alice/fix-retry_backoff") == "fix retry backoff"
    assert branch_words(None) == ""


def test_merge_members_of_every_branch_match_git_rev_list(tmp_path: Path) -> None:
    """Merges into a release branch, into a branch merged in turn, and after an octopus."""
    import symbiotic_assets.search.change_terms as ct

    b = GitRepoBuilder(tmp_path / "repo")
    b.commit("A", "2024-01-01T00:00:00+0000", ALICE, {"a.txt": "a\n"})
    for name in ("x", "y"):
        b.checkout("-b", name, "main")
        b.commit(name, "2024-01-02T00:00:00+0000", BOB, {f"{name}.txt": "1\n"})
    b.checkout("main")
    b.git("merge", "-q", "--no-ff", "-m", "Octopus", "x", "y", date="2024-01-03T00:00:00+0000",
          who=ALICE)  # fmt: skip
    b.checkout("-b", "release", "main")
    b.checkout("-b", "fix")
    b.commit("F", "2024-01-04T00:00:00+0000", BOB, {"f.txt": "f\n"})
    b.checkout("release")
    b.merge("fix", "Merge pull request #1 from bob/fix", "2024-01-05T00:00:00+0000", ALICE)
    b.checkout("-b", "big", "main")
    b.checkout("-b", "part")
    b.commit("P", "2024-01-06T00:00:00+0000", BOB, {"p.txt": "p\n"})
    b.checkout("big")
    b.commit("G", "2024-01-06T01:00:00+0000", BOB, {"g.txt": "g\n"})
    b.merge("part", "Merge pull request #2 from bob/part", "2024-01-07T00:00:00+0000", BOB)
    b.checkout("main")
    b.commit("Y", "2024-01-07T01:00:00+0000", ALICE, {"y.txt": "2\n"})  # touches y again
    b.merge("big", "Merge pull request #3 from bob/big", "2024-01-08T00:00:00+0000", ALICE)
    nested = b.git("rev-parse", "big").strip()
    b.git("branch", "-D", "big", "part", "fix")  # #2 is now on no branch's first-parent chain
    graph = [line.split() for line in b.git("log", "--all", "--format=%H %P").splitlines()]
    parents = {g[0]: g[1:] for g in graph}
    is_merge = {h: len(p) > 1 for h, p in parents.items()}
    merges = [h for h, p in parents.items() if len(p) == 2]
    tips = [b.head(), b.git("rev-parse", "release").strip()]
    got = ct.merge_members(parents, is_merge, tips, merges)
    assert set(got) == set(merges) and len(merges) == 3 and nested in got
    for m in merges:
        p1, p2 = parents[m]
        assert set(got[m]) == set(b.git("rev-list", "--no-merges", p2, f"^{p1}").split())
    # a stretch above a junction is walked only when it settles enough merges to pay
    mp = pytest.MonkeyPatch()
    mp.setattr(ct, "COMMITS_PER_GIT_CALL", 1)  # git calls as cheap as one step of a walk
    try:
        mainline_only = ct.merge_members(parents, is_merge, tips, merges)
    finally:
        mp.undo()
    on_main = set(b.git("rev-list", "--first-parent", "--merges", "HEAD").split()) & set(merges)
    assert set(mainline_only) == on_main and len(on_main) == 1
