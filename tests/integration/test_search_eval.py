"""The retrieval evaluation (``make eval-search``) on a repository with GitHub-style PR merges.

The repository is built with git itself: every pull request is a branch of two
commits merged with ``--no-ff`` and GitHub's merge message, so the evaluation
finds its queries (PR titles) and relevant commits exactly as on a real clone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from gitrepo import ALICE, BOB, GitRepoBuilder

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import search_eval  # noqa: E402

pytestmark = pytest.mark.slow
MODEL_CACHE = Path(__file__).resolve().parents[2] / ".pytest_cache" / "symbiotic-models"

# (PR title, the branch's two commit subjects, file touched)
PULLS = [
    (
        "Retry with exponential backoff",
        ["Add backoff helper", "Use backoff in the HTTP client"],
        "src/http/retry.py",
    ),
    (
        "Fix unicode filenames on Windows",
        ["Decode paths with surrogateescape", "Fix unicode filenames on Windows"],
        "src/fs/paths.py",
    ),
    # two spaces, as people type them: the click log normalises whitespace
    (
        "little  modification in consume_socket_content",
        ["Read the socket in chunks", "Stop at EOF in consume_socket_content"],
        "src/net/socket.py",
    ),
    (
        "Document the proxy settings",
        ["Docs: proxies section", "Docs: proxy environment variables"],
        "docs/proxies.md",
    ),
    (
        "Speed up header parsing",
        ["Parse headers with one regex", "Cache parsed header names"],
        "src/http/headers.py",
    ),
    (
        "Drop Python 3.8 support",
        ["Remove 3.8 from the CI matrix", "Use PEP 604 unions"],
        "pyproject.toml",
    ),
]


@pytest.fixture(scope="module")
def pr_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = GitRepoBuilder(tmp_path_factory.mktemp("pr") / "project")
    repo.commit("Initial commit", "2024-01-01T00:00:00+0000", ALICE, {"README.md": "hello\n"})
    for n, (title, subjects, path) in enumerate(PULLS, start=1):
        day = f"2024-02-{n:02d}"
        repo.checkout("-b", f"topic-{n}")
        for k, subject in enumerate(subjects):
            repo.commit(subject, f"{day}T1{k}:00:00+0000", BOB, {path: f"{subject}\n"})
        repo.checkout("main")
        repo.commit(
            f"Unrelated change {n}", f"{day}T12:00:00+0000", ALICE, {f"notes/{n}.txt": "x\n"}
        )
        message = f"Merge pull request #{100 + n} from bob/topic-{n}\n\n{title}"
        repo.merge(f"topic-{n}", message, f"{day}T13:00:00+0000", ALICE)
    return repo.path


def test_time_split_eval_scores_every_method_on_the_newest_prs(
    pr_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYMBIOTIC_MODEL_CACHE", str(MODEL_CACHE))
    assert search_eval.main([str(pr_repo)]) == 0
    out = capsys.readouterr().out
    # six PRs: the three older ones train, the three newest (proxy docs, header parsing,
    # Python 3.8) are the queries; none repeats a commit subject, so all are non-trivial
    assert "6 PRs (3 older for learning, 3 newest tested, 0 of them squash-merged)" in out
    assert "3 queries (3 non-trivial)" in out
    for method in ("bm25", "minilm", "rrf", "ours, default weights", "ours"):
        assert f"| {method} " in out
    assert "change terms:" in out and "commits/s" in out


def test_click_replay_runs_on_queries_with_irregular_spaces(
    pr_repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYMBIOTIC_MODEL_CACHE", str(MODEL_CACHE))
    assert search_eval.main([str(pr_repo), "--clicks-replay", "--reasks", "2"]) == 0
    out = capsys.readouterr().out
    searches = len(PULLS) * 3
    assert f"click replay over {searches} searches" in out
    assert "whole log, defaults" in out
