"""search/serving_index publishes only when something changed, and reads the previous format.

A real repository built with git, the real model, the Dagster jobs: a second
publish with nothing new writes no version and takes well under a second; a new
commit publishes a version holding it; a version folder in the previous format
(format 1: ``vectors.npy`` at the top, no fingerprint) is still searchable and is
replaced by the current format on the next run.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest
from gitrepo import ALICE
from test_search import materialization, run_jobs, searched_repository


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    with searched_repository(tmp_path_factory.mktemp("incremental")) as found:
        yield {**found, "first": found["results"]}


def publish_job(env) -> dict:
    result = (
        env["defs"].resolve_job_def("search_publish").execute_in_process(instance=env["instance"])
    )
    assert result.success
    return materialization(result, ["search", "serving_index"])


def versions(root) -> list[str]:
    return sorted(p.name for p in (root / "versions").iterdir() if not p.name.startswith("."))


def test_no_op_publish_writes_nothing_and_is_fast(env) -> None:
    from symbiotic_assets.core.config import load_settings
    from symbiotic_assets.core.resources import WarehouseResource
    from symbiotic_assets.search.assets import search_root
    from symbiotic_assets.search.commit_embeddings import publish_from_warehouse
    from symbiotic_assets.search.index import load_published

    root = search_root(load_settings())
    first = materialization(env["first"]["search_publish"], ["search", "serving_index"])
    assert first["published"] is True
    before = versions(root)
    again = publish_job(env)
    assert again["published"] is False and again["version"] == first["version"]
    assert versions(root) == before
    # the decision itself, on the warehouse, without Dagster around it
    warehouse = WarehouseResource(database=load_settings().warehouse)
    index = load_published(root)
    with warehouse.connect() as con:
        t = time.perf_counter()
        result = publish_from_warehouse(
            con, root, index.model_id, weights=index.weights, clicks=index.clicks
        )
        elapsed = time.perf_counter() - t
    assert not result.changed and result.version == first["version"]
    assert elapsed <= 1.0, f"no-op publish took {elapsed:.2f} s"
    assert versions(root) == before


def test_a_new_commit_publishes_a_version_that_holds_it(env) -> None:
    from symbiotic_assets.core.config import load_settings
    from symbiotic_assets.search.api import semantic_search
    from symbiotic_assets.search.assets import search_root
    from symbiotic_assets.search.index import load_published

    root = search_root(load_settings())
    size_before = load_published(root).size
    b = env["repo"]["builder"]
    b.commit("Add a websocket heartbeat so idle proxies keep the connection open",
             "2024-03-05T10:00:00+0000", ALICE, {"src/ws/heartbeat.py": "PING = 30\n"})  # fmt: skip
    new_hash = b.head()
    results = run_jobs(env["instance"], env["defs"], "demo")
    meta = materialization(results["search_publish"], ["search", "serving_index"])
    assert meta["published"] is True and meta["commits"] == size_before + 1
    index = load_published(root)
    assert index.size == size_before + 1
    hits = semantic_search("keep idle websocket connections alive", index_root=root, k=3)
    assert hits and hits[0].hash == new_hash


def test_a_previous_format_version_is_read_then_replaced(env) -> None:
    from symbiotic_assets.core.config import load_settings
    from symbiotic_assets.search.api import semantic_search
    from symbiotic_assets.search.assets import search_root
    from symbiotic_assets.search.index import FORMAT_VERSION, current_version, load_published

    root = search_root(load_settings())
    folder = root / "versions" / current_version(root)
    # rewrite the current version the way format 1 laid it out
    shutil.move(folder / "vectors" / "vectors.npy", folder / "vectors.npy")
    shutil.rmtree(folder / "vectors")
    meta = json.loads((folder / "meta.json").read_text())
    meta["format_version"] = 1
    meta.pop("source_fingerprint", None)
    (folder / "meta.json").write_text(json.dumps(meta))
    old = load_published(root)
    assert old.meta["format_version"] == 1 and old.ann is None
    hits = semantic_search("where did we change the retry backoff", index_root=root, k=3)
    assert hits and "backoff" in hits[0].subject.lower()
    after = publish_job(env)
    assert after["published"] is True
    assert load_published(root).meta["format_version"] == FORMAT_VERSION
