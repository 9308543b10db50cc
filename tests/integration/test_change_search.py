"""Change terms and grouped results on a repository built with git, with the real model.

Known answers by construction: a commit whose message says nothing ("Tidy up")
changes the body of ``resolve_redirect_target``; git's hunk header names the
function, so a search for the name finds the commit. Two pull requests of three
commits each about retries, merged with GitHub's message, come back as two
changes, each holding every one of its matching commits exactly once.
"""

from __future__ import annotations

import pytest
from gitrepo import ALICE, BOB, CAROL, GitRepoBuilder

from symbiotic_assets.core.config import PROJECT_ROOT

MODEL_CACHE = PROJECT_ROOT / ".pytest_cache" / "symbiotic-models"

SESSIONS = """\
class Session:
    def resolve_redirect_target(self, resp):
        location = resp.headers["location"]
        return location

    def close(self):
        self.adapters.clear()
"""

RETRY_PRS = [
    (1, "alice/retry-budget", "Limit retries per request",
     ["Count retries per request", "Stop retrying when the retry budget is spent",
      "Test the retry budget"]),
    (2, "bob/retry-jitter", "Spread retries over time",
     ["Add jitter to retry delays", "Retry delays grow exponentially", "Document retry delays"]),
]  # fmt: skip


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from symbiotic_assets.core.config import RepositorySpec
    from symbiotic_assets.core.embedding import IssueEmbedder
    from symbiotic_assets.core.warehouse import connect
    from symbiotic_assets.git.extract import refresh_repository
    from symbiotic_assets.git.repository import GitRepository
    from symbiotic_assets.search.change_terms import (
        publish_groups,
        refresh_change_terms,
    )
    from symbiotic_assets.search.commit_embeddings import (
        embed_repository,
        load_corpus,
        model_key,
        publish_from_warehouse,
    )
    from symbiotic_assets.search.index import SearchIndex

    base = tmp_path_factory.mktemp("changes")
    home = base / "home"
    home.mkdir()
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(MODEL_CACHE)
    b = GitRepoBuilder(base / "demo")
    c: dict[str, str] = {}
    b.commit("Initial commit", "2024-01-01T09:00:00+0000", ALICE,
             {"src/sessions.py": SESSIONS.replace('["location"]', '.get("location")'),
              "README.md": "demo\n"})  # fmt: skip
    c["tidy"] = b.commit("Tidy up", "2024-01-02T09:00:00+0000", BOB,
                         {"src/sessions.py": SESSIONS})  # fmt: skip
    for n, subject in enumerate(["Update the changelog", "Tidy the README", "Tidy up imports"]):
        b.commit(subject, f"2024-01-03T1{n}:00:00+0000", CAROL, {f"docs/n{n}.md": subject})
    for number, branch, title, subjects in RETRY_PRS:
        b.checkout("-b", branch.split("/")[1])
        for k, subject in enumerate(subjects):
            c[subject] = b.commit(subject, f"2024-02-0{number}T1{k}:00:00+0000", BOB,
                                  {f"src/retry_{number}.py": f"# {subject}\n"})  # fmt: skip
        b.checkout("main")
        b.commit(f"Unrelated {number}", f"2024-02-0{number}T15:00:00+0000", ALICE,
                 {f"notes/{number}.txt": "x\n"})  # fmt: skip
        b.merge(branch.split("/")[1], f"Merge pull request #{number} from {branch}\n\n{title}",
                f"2024-02-0{number}T16:00:00+0000", ALICE)  # fmt: skip
    db = base / "warehouse.duckdb"
    refresh_repository(db, RepositorySpec(name="demo", path=b.path))
    embedder = IssueEmbedder(cache_dir=MODEL_CACHE)
    with connect(db) as con:
        embed_repository(con, "demo", embedder)
        first = refresh_change_terms(con, GitRepository.open("demo", b.path), "demo")
        again = refresh_change_terms(con, GitRepository.open("demo", b.path), "demo")
        corpus = load_corpus(con, model_key(embedder), ["demo"])
        # the product's publish: the serving index reads the change terms itself
        publish_from_warehouse(con, home / "published" / "search", model_key(embedder))
        publish_groups(con, home / "published" / "search-changes")
        rows = con.execute(
            "SELECT hash, functions FROM search.change_terms WHERE repository = 'demo'"
        ).fetchall()
    root = home / "published" / "search"
    plain = SearchIndex.build(corpus, model_key(embedder))
    mp = pytest.MonkeyPatch()
    mp.setenv("SYMBIOTIC_HOME", str(home))
    yield {"commits": c, "root": root, "first": first, "again": again,
           "functions": dict(rows), "plain": plain}  # fmt: skip
    mp.undo()


def test_hunk_headers_name_the_function_and_the_pass_is_incremental(published) -> None:  # type: ignore[no-untyped-def]
    tidy = published["commits"]["tidy"]
    assert "resolve_redirect_target" in published["functions"][tidy]
    assert published["first"].commits == len(published["functions"])
    assert published["first"].groups == 2
    assert published["again"].commits == 0 and published["again"].groups == 0


def test_a_function_name_finds_the_commit_that_changed_it(published) -> None:  # type: ignore[no-untyped-def]
    from symbiotic_assets.search.api import semantic_search
    from symbiotic_assets.search.text import parse_query

    tidy = published["commits"]["tidy"]
    hits = semantic_search("resolve_redirect_target", k=3, index_root=published["root"])
    assert hits[0].hash == tidy
    assert "resolve_redirect_target" in hits[0].why
    # without the change terms nothing in the commit's text names the function
    plain = published["plain"]
    doc = plain.docs_for_hashes([tidy])[0]
    scores, _ = plain.bm25.score_docs([doc], parse_query("resolve_redirect_target").terms)
    assert float(scores[0]) == 0.0


def test_grouped_results_hold_every_matching_commit_of_a_pr_once(published) -> None:  # type: ignore[no-untyped-def]
    from symbiotic_assets.search.api import SearchResult, semantic_search

    flat = semantic_search("retry delays and retry budget", k=50, index_root=published["root"])
    assert all(isinstance(r, SearchResult) and r.hash for r in flat)
    changes = semantic_search("retry delays and retry budget", k=10, grouped=True,
                              index_root=published["root"])  # fmt: skip
    shown = [c.hash for change in changes for c in change.commits]
    assert len(shown) == len(set(shown))  # every commit once
    by_pr = {change.pr_number: change for change in changes if change.pr_number}
    assert set(by_pr) == {1, 2}
    flat_hashes = {r.hash for r in flat}
    for number, branch, title, subjects in RETRY_PRS:
        change = by_pr[number]
        assert change.title == title and change.branch == branch
        expected = {published["commits"][s] for s in subjects} & flat_hashes
        assert {c.hash for c in change.commits} == expected and len(expected) == 3
        assert change.paths == [f"src/retry_{number}.py"]
    # changes come in the order of their best commit
    best = [min(r.rank for r in flat if r.hash in {c.hash for c in ch.commits}) for ch in changes]
    assert best == sorted(best)


def test_cli_shows_each_change_once_and_commits_on_request(published) -> None:  # type: ignore[no-untyped-def]
    import json

    import typer
    from typer.testing import CliRunner

    from symbiotic_assets.search.cli import search_command

    app = typer.Typer()
    app.command("search")(search_command)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    env = {"COLUMNS": "240"}
    grouped = runner.invoke(app, ["search", "retry delays", "--no-record", "--json"], env=env)
    assert grouped.exit_code == 0, grouped.output
    payload = json.loads(grouped.output)
    titles = [c["title"] for c in payload["changes"]]
    assert len(titles) == len(set(titles)) and "Spread retries over time" in titles
    listed = [h for c in payload["changes"] for h in c["commits"]]
    assert listed == [r["hash"] for r in payload["results"]]  # shown = recorded, in order
    table = runner.invoke(app, ["search", "retry delays", "--no-record"], env=env)
    assert table.exit_code == 0 and table.output.count("Spread retries over time") == 1
    assert "bob/retry-jitter" in table.output
    flat = runner.invoke(app, ["search", "retry delays", "--no-record", "--commits", "--json",
                               "--k", "4"], env=env)  # fmt: skip
    assert flat.exit_code == 0 and "changes" not in json.loads(flat.output)
    assert len(json.loads(flat.output)["results"]) == 4


def test_mcp_tool_groups_by_change_and_keeps_the_flat_top_k(published) -> None:  # type: ignore[no-untyped-def]
    from symbiotic_assets.mcp.server import semantic_search as tool

    out = tool("retry delays and retry budget", k=3, record=False)
    assert len(out["results"]) == 3 and all(r["hash"] for r in out["results"])
    by_pr = {c["pr_number"]: c for c in out["changes"] if c["pr_number"]}
    assert set(by_pr) == {1, 2}
    listed = [h for c in out["changes"] for h in c["commits"]]
    assert len(listed) == len(set(listed))
    assert len(by_pr[2]["commits"]) == 3 and by_pr[2]["branch"] == "bob/retry-jitter"
    flat = tool("retry delays and retry budget", k=3, record=False, commits_only=True)
    assert "changes" not in flat and [r["hash"] for r in flat["results"]] == [
        r["hash"] for r in out["results"]
    ]
