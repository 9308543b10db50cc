"""Search end to end on a repository built with git: Dagster assets, the real model, the API.

Known answers by construction: "Add exponential retry backoff" is the commit for
"where did we change the retry backoff", a hash prefix finds its commit, ``#1234``
finds the squash commit of PR 1234, a function name finds the commit naming it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from gitrepo import ALICE, BOB, CAROL, GitRepoBuilder

from symbiotic_assets.core.config import PROJECT_ROOT

MODEL_CACHE = PROJECT_ROOT / ".pytest_cache" / "symbiotic-models"  # survives runs, never committed


def build_search_repo(path: Path) -> dict[str, str]:
    b = GitRepoBuilder(path)
    c = {}
    c["init"] = b.commit("Initial commit", "2024-01-02T09:00:00+0000", ALICE,
                         {"README.md": "demo\n", "src/app.py": "print('hi')\n"})  # fmt: skip
    c["backoff"] = b.commit(
        "Add exponential retry backoff\n\nFailed HTTP calls now wait 2**n seconds (with jitter) "
        "before the next attempt, up to five attempts.",
        "2024-01-05T10:00:00+0000", BOB,
        {"src/http/retry_policy.py": "def delay(n):\n    return 2 ** n\n"})  # fmt: skip
    c["typo"] = b.commit("Fix typo in README", "2024-01-06T10:00:00+0000", CAROL,
                         {"README.md": "Demo\n"})  # fmt: skip
    c["checksum"] = b.commit(
        "Add upload integrity helper\n\ncompute_checksum() hashes the file in 1 MiB chunks so "
        "large uploads can be verified.",
        "2024-02-01T10:00:00+0000", ALICE,
        {"src/upload/checksum.py": "def compute_checksum(f):\n    pass\n"})  # fmt: skip
    c["ci"] = b.commit("Run the CI workflow on Python 3.12", "2024-02-03T10:00:00+0000", CAROL,
                       {".github/workflows/ci.yml": "on: push\n"})  # fmt: skip
    b.git("branch", "feature")
    b.checkout("feature")
    c["pool"] = b.commit("Refactor database connection pooling (#1234)", "2024-02-10T10:00:00+0000",
                         BOB, {"src/db/pool.py": "POOL = 5\n"})  # fmt: skip
    b.checkout("main")
    c["logging"] = b.commit("Log every request with its duration", "2024-02-11T10:00:00+0000",
                            ALICE, {"src/server/handler.py": "import logging\n"})  # fmt: skip
    b.merge("feature", "Merge branch 'feature'", "2024-02-12T10:00:00+0000", CAROL)
    c["merge"] = b.head()
    c["dark"] = b.commit("Add a dark mode theme to the settings page", "2024-03-01T10:00:00+0000",
                         CAROL, {"web/settings/Theme.tsx": "export {}\n"})  # fmt: skip
    return {"builder": b, **c}  # type: ignore[dict-item]


def search_defs() -> dg.Definitions:
    from symbiotic_assets.core.config import load_settings
    from symbiotic_assets.core.resources import EmbedderResource, WarehouseResource
    from symbiotic_assets.git.definitions import defs as git_defs
    from symbiotic_assets.search.definitions import defs as search

    shared = dg.Definitions(
        resources={
            "warehouse": WarehouseResource(database=load_settings().warehouse),
            "search_embedder": EmbedderResource(cache_dir=str(MODEL_CACHE)),
        }
    )
    return dg.Definitions.merge(git_defs, dg.Definitions(assets=search.assets, jobs=search.jobs,
                                                         schedules=search.schedules), shared)  # fmt: skip


def run_jobs(instance: dg.DagsterInstance, defs: dg.Definitions, partition: str) -> dict:
    out = {}
    for job, key in (
        ("git_refresh", partition),
        ("search_embed", partition),
        ("search_publish", None),
    ):
        result = defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=key)
        assert result.success
        out[job] = result
    return out


def materialization(result: dg.ExecuteInProcessResult, key: list[str]) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key == dg.AssetKey(key):
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"no materialization of {key}")


@contextmanager
def searched_repository(base: Path) -> Iterator[dict]:
    """The demo repository configured alone under ``base``, its git, embedding and publish
    jobs run once: repo, home, instance, defs and the first jobs' results."""
    home = base / "home"
    home.mkdir()
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(MODEL_CACHE)  # the API's query embedder reuses the export
    repo = build_search_repo(base / "demo")
    cfg = base / "symbiotic.yaml"
    cfg.write_text(f"repositories:\n  - path: {base / 'demo'}\n    name: demo\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("SYMBIOTIC_HOME", str(home))
    mp.setenv("SYMBIOTIC_CONFIG", str(cfg))
    mp.delenv("SYMBIOTIC_WAREHOUSE", raising=False)
    mp.delenv("SYMBIOTIC_REPOSITORIES", raising=False)
    try:
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("repositories", ["demo"])
            defs = search_defs()
            results = run_jobs(instance, defs, "demo")
            yield {"repo": repo, "home": home, "instance": instance, "defs": defs,
                   "results": results}  # fmt: skip
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory):
    """Build the repository, run git, embedding and publishing jobs once for the module."""
    with searched_repository(tmp_path_factory.mktemp("search")) as env:
        yield env


def top(query: str, **kw) -> list:
    from symbiotic_assets.search.api import semantic_search

    return semantic_search(query, **kw)


def test_known_answers(published):
    c = published["repo"]
    hits = top("where did we change the retry backoff")
    assert hits[0].hash == c["backoff"]
    assert hits[0].repository == "demo" and hits[0].author == BOB[0]
    assert hits[0].date.startswith("2024-01-05")
    assert "semantic" in hits[0].why and "retry" in hits[0].why and "backoff" in hits[0].why
    # purely semantic: no word of the query is in the commit
    assert top("night colors for the user interface")[0].hash == c["dark"]


def test_exact_identifiers_find_their_commit(published):
    c = published["repo"]
    by_hash = top(c["typo"][:8])
    assert by_hash[0].hash == c["typo"] and "hash prefix" in by_hash[0].why
    assert top(f"what did {c['ci'][:12]} do")[0].hash == c["ci"]
    by_issue = top("#1234")
    assert by_issue[0].hash == c["pool"] and "issue reference" in by_issue[0].why
    by_name = top("compute_checksum")
    assert by_name[0].hash == c["checksum"] and "identifier" in by_name[0].why


def test_filters(published):
    c = published["repo"]
    assert {h.author for h in top("change", authors=["bob"])} == {BOB[0]}
    assert [h.hash for h in top("retry", paths=["src/http"])] == [c["backoff"]]
    since = top("change", since="2024-02-05", until="2024-03-01")
    assert {h.hash for h in since} == {c["pool"], c["logging"]}
    assert c["merge"] not in {h.hash for h in top("merge feature branch", k=20)}
    assert top("merge feature branch", k=3, include_merges=True)[0].hash == c["merge"]
    with pytest.raises(ValueError, match="nope"):
        top("x", repositories=["nope"])
    with pytest.raises(ValueError, match="since='yesterday'"):
        top("x", since="yesterday")


def test_embedding_is_incremental_and_vectors_are_unit(published):
    from symbiotic_assets.core.config import load_settings
    from symbiotic_assets.core.warehouse import connect

    first = materialization(published["results"]["search_embed"], ["search", "commit_embeddings"])
    assert first["new_vectors"] == 9  # 8 commits and the merge
    b = published["repo"]["builder"]
    new = b.commit("Cap the retry backoff at 30 seconds", "2024-03-02T10:00:00+0000", ALICE,
                   {"src/http/retry_policy.py": "def delay(n):\n    return min(30, 2 ** n)\n"})  # fmt: skip
    results = run_jobs(published["instance"], published["defs"], "demo")
    again = materialization(results["search_embed"], ["search", "commit_embeddings"])
    assert again["new_vectors"] == 1 and again["model_calls"] == 1 and again["vectors"] == 10
    with connect(load_settings().warehouse, read_only=True) as con:
        norms = con.execute(
            "SELECT min(sqrt(list_dot_product(vector, vector))), max(sqrt(list_dot_product(vector,"
            " vector))), count(*), count(DISTINCT hash) FROM search.commit_embeddings"
        ).fetchone()
    assert norms[0] > 0.999 and norms[1] < 1.001 and norms[2] == norms[3] == 10
    assert top("retry backoff limit")[0].hash in {new, published["repo"]["backoff"]}


def test_search_works_while_another_process_holds_the_warehouse(published):
    from symbiotic_assets.core.config import load_settings
    from symbiotic_assets.search import api

    api._indexes.clear()  # force a fresh load from the published files
    warehouse = load_settings().warehouse
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({warehouse!r})
            con.execute("CREATE TABLE IF NOT EXISTS main.held (x INTEGER)")
            con.execute("BEGIN TRANSACTION")
            con.execute("INSERT INTO main.held VALUES (1)")
            print("holding", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        import duckdb

        with pytest.raises(duckdb.IOException, match="(?i)lock"):
            duckdb.connect(warehouse, read_only=True)  # the warehouse really is taken
        hits = api.semantic_search("where did we change the retry backoff")
        assert hits and hits[0].subject.lower().find("retry") >= 0
    finally:
        holder.kill()
        holder.wait()


def test_clicks_are_recorded_learned_published_and_used(published):
    from symbiotic_assets.events.store import list_events
    from symbiotic_assets.search.api import record_click, record_search, semantic_search
    from symbiotic_assets.search.index import load_published

    c = published["repo"]
    for i in range(6):
        query = f"request logging {i}"
        hits = semantic_search(query, k=5)
        sid = record_search(query, hits)
        target = next(h for h in hits if h.hash == c["logging"])
        record_click(query, target.hash, target.rank, search_id=sid)
    assert len(list_events("search_click", limit=None)) == 6
    defs = published["defs"]
    result = defs.resolve_job_def("search_publish").execute_in_process(
        instance=published["instance"]
    )
    assert result.success
    meta = materialization(result, ["search", "ranker_weights"])
    assert meta["source"] == "learned" and meta["clicks"] == 6
    index = load_published(published["home"] / "published" / "search")
    assert index.weights.source == "learned" and index.weights.stats["searches"] == 6
    hits = semantic_search("request logging")
    assert "learned ranker" in hits[0].why


def test_click_memory_lifts_a_paraphrase_and_leaves_unrelated_queries_alone(published):
    from symbiotic_assets.search.api import embedder_for, record_click, record_search
    from symbiotic_assets.search.index import load_published
    from symbiotic_assets.search.text import parse_query

    asked = "make the settings page look nicer"
    paraphrase = "where did we make the settings page look nicer"
    unrelated = "fix a spelling mistake in the readme"
    before = [h.hash for h in top(paraphrase)]
    target = before[2]  # people keep picking the third result
    for _ in range(5):
        hits = top(asked)
        sid = record_search(asked, hits)
        pick = next(h for h in hits if h.hash == target)
        record_click(asked, pick.hash, pick.rank, search_id=sid)
    result = (
        published["defs"]
        .resolve_job_def("search_publish")
        .execute_in_process(instance=published["instance"])
    )
    assert result.success
    assert materialization(result, ["search", "serving_index"])["click_memory_queries"] >= 5
    after = top(paraphrase)
    rank_after = next(h.rank for h in after if h.hash == target)
    assert rank_after < 3
    assert "clicked for similar queries (5)" in next(h.why for h in after if h.hash == target)
    # An unrelated query gets exactly the ranking of the same index without the click memory.
    index = load_published(published["home"] / "published" / "search")
    vec = embedder_for(index.model_id).embed_one(unrelated)
    assert index.clicks is not None and index.clicks.boosts(vec) == {}
    mask = index.filter_mask(include_merges=False)
    plain = index.rank(parse_query(unrelated), vec, k=10, mask=mask, clicks=False)
    got = top(unrelated)
    assert [h.hash for h in got] == [index.hash_of(h.doc) for h in plain]
    assert [h.score for h in got] == [round(h.score, 4) for h in plain]
    assert not any("clicked for similar" in h.why for h in got)


def test_cli_json_and_table(published):
    import typer
    from typer.testing import CliRunner

    from symbiotic_assets.search.cli import search_command

    app = typer.Typer()
    app.command("search")(search_command)
    app.command("noop")(lambda: None)  # two commands: Typer keeps "search" as a sub-command
    runner = CliRunner()
    out = runner.invoke(app, ["search", "#1234", "--json", "--k", "3"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert payload["results"][0]["hash"] == published["repo"]["pool"]
    table = runner.invoke(app, ["search", "retry backoff", "--no-record"],
                          env={"COLUMNS": "200"})  # fmt: skip
    assert table.exit_code == 0 and "retry" in table.output.lower()
    bad = runner.invoke(app, ["search", "x", "--repository", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output


def test_definitions_import_does_not_load_torch():
    code = (
        "import sys; import symbiotic_assets.search.definitions; "
        "print('torch' in sys.modules or 'sentence_transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ}, check=True)  # fmt: skip
    assert out.stdout.strip() == "False"
