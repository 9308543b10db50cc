"""The streamed publish writes the files the in-memory build writes, byte for byte.

A repository built with git (merges, pull requests with change terms, commits
touching many paths, a commit without a subject, non-ASCII subjects), extracted
and embedded with the real model. ``publish_from_warehouse`` (streamed: commits
in batches, BM25 postings sorted in runs on disk) is run with batches of 3
commits and runs of 40 tokens, so that every batch and run boundary is crossed;
its version folder is compared file by file with ``SearchIndex.build`` + ``save``
of ``with_change_terms(load_corpus(...))``, the previous publish path, and the
two give the same search results.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gitrepo import ALICE, BOB, CAROL, GitRepoBuilder

from symbiotic_assets.core.config import PROJECT_ROOT

MODEL_CACHE = PROJECT_ROOT / ".pytest_cache" / "symbiotic-models"

CLIENT = """\
class Client:
    def send_with_retry(self, request, attempts=3):
        prepared = self.prepare(request)
        timeout = self.timeout
        headers = prepared.headers
        headers["x-attempts"] = str(attempts)
        return self.transport.send(prepared, timeout=timeout)

    def close(self):
        self.pool.clear()
"""

QUERIES = ["retry budget", "send_with_retry", "websocket heartbeat", "#2", "Überarbeitung"]


@pytest.fixture(scope="module")
def publishes(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from symbiotic_assets.core.config import RepositorySpec
    from symbiotic_assets.core.embedding import IssueEmbedder
    from symbiotic_assets.core.warehouse import connect
    from symbiotic_assets.git.extract import refresh_repository
    from symbiotic_assets.git.repository import GitRepository
    from symbiotic_assets.search.change_terms import refresh_change_terms, with_change_terms
    from symbiotic_assets.search.commit_embeddings import (
        load_corpus,
        model_key,
        publish_from_warehouse,
    )
    from symbiotic_assets.search.index import SearchIndex, publish

    base = tmp_path_factory.mktemp("streamed")
    b = GitRepoBuilder(base / "demo")
    b.commit("Initial commit", "2024-01-01T09:00:00+0000", ALICE,
             {"src/client.py": CLIENT.replace("str(attempts)", "attempts"), "README.md": "x\n"})  # fmt: skip
    b.commit("Tidy up", "2024-01-02T09:00:00+0000", BOB, {"src/client.py": CLIENT})
    b.write("notes/empty.txt", "no subject\n")
    b.git("add", "-A")
    b.git(
        "commit", "-q", "--allow-empty-message", "-m", "", date="2024-01-02T10:00:00+0000", who=BOB
    )
    b.commit("Überarbeitung der Dokumentation für café-Nutzer", "2024-01-02T11:00:00+0000",
             CAROL, {"docs/über.md": "ü\n"})  # fmt: skip
    b.commit("Vendor the websocket heartbeat library", "2024-01-03T09:00:00+0000", CAROL,
             {f"vendor/ws/mod{i}/heartbeat_{i}.py": f"PING = {i}\n" for i in range(40)})  # fmt: skip
    for number, branch in ((1, "retry-budget"), (2, "retry-jitter")):
        b.checkout("-b", branch)
        for k in range(3):
            b.commit(f"Retry budget step {k} of PR {number}", f"2024-02-0{number}T1{k}:00:00+0000",
                     BOB, {f"src/retry_{number}.py": f"BUDGET = {k}\n"})  # fmt: skip
        b.checkout("main")
        b.commit(f"Unrelated {number}", f"2024-02-0{number}T15:00:00+0000", ALICE,
                 {f"notes/{number}.txt": "x\n"})  # fmt: skip
        b.merge(branch, f"Merge pull request #{number} from bob/{branch}\n\nRetries",
                f"2024-02-0{number}T16:00:00+0000", ALICE)  # fmt: skip
    db = base / "warehouse.duckdb"
    refresh_repository(db, RepositorySpec(name="demo", path=b.path))
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    embedder = IssueEmbedder(cache_dir=MODEL_CACHE)
    key = model_key(embedder)
    streamed_root, built_root = base / "streamed", base / "built"
    with connect(db) as con:
        from symbiotic_assets.search.commit_embeddings import embed_repository

        embed_repository(con, "demo", embedder)
        refresh_change_terms(con, GitRepository.open("demo", b.path), "demo")
        result = publish_from_warehouse(con, streamed_root, key, batch_rows=3, run_postings=40)
        again = publish_from_warehouse(con, streamed_root, key, batch_rows=3, run_postings=40)
        memory = con.execute("SELECT current_setting('memory_limit')").fetchone()
        corpus = with_change_terms(con, load_corpus(con, key))
    built = SearchIndex.build(corpus, key)
    built.meta = {"source_fingerprint": "", "repositories": {}}
    publish(built, built_root)
    return {
        "result": result,
        "again": again,
        "memory_limit": memory[0] if memory else None,
        "streamed": _folder(streamed_root),
        "built": _folder(built_root),
        "corpus": corpus,
        "embedder": embedder,
        "db": db,
        "model": key,
    }


def _folder(root: Path) -> Path:
    from symbiotic_assets.search.index import current_version

    return root / "versions" / current_version(root)


def test_every_file_equals_the_in_memory_build(publishes) -> None:  # type: ignore[no-untyped-def]
    streamed, built = publishes["streamed"], publishes["built"]
    names = sorted(p.relative_to(streamed).as_posix() for p in streamed.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file())
    assert not [n for n in names if "bm25-runs" in n]  # the runs were removed
    assert publishes["corpus"].texts and any(
        "send_with_retry" in t for t in publishes["corpus"].texts
    )
    for name in names:
        if name.endswith(".npy"):
            a, b = np.load(streamed / name), np.load(built / name)
            assert a.dtype == b.dtype and a.shape == b.shape, name
            assert np.array_equal(a, b), name
            assert (streamed / name).read_bytes() == (built / name).read_bytes(), name
        elif name == "meta.json":
            a, b = (json.loads((f / name).read_text()) for f in (streamed, built))
            for volatile in ("version", "published_at", "source_fingerprint", "repositories"):
                a.pop(volatile), b.pop(volatile)
            assert a == b
        elif name != "vectors/index.json":
            assert (streamed / name).read_bytes() == (built / name).read_bytes(), name
    # several BM25 runs and subject rows of every batch really were written
    meta = json.loads((streamed / "meta.json").read_text())
    assert meta["documents"] == len(publishes["corpus"].hashes) >= 4 * 3
    assert meta["repositories"] == {"demo": meta["documents"]}


def test_searches_give_the_same_results(publishes) -> None:  # type: ignore[no-untyped-def]
    from symbiotic_assets.search.index import SearchIndex
    from symbiotic_assets.search.text import parse_query

    streamed = SearchIndex.load(publishes["streamed"])
    built = SearchIndex.load(publishes["built"])
    embed = publishes["embedder"].embed_many
    for query, vec in zip(QUERIES, embed(QUERIES), strict=True):
        parsed = parse_query(query)
        a = [(h.doc, h.score) for h in streamed.rank(parsed, vec, k=5)]
        assert a == [(h.doc, h.score) for h in built.rank(parsed, vec, k=5)], query
        assert a, query
    hits = streamed.rank(parse_query("send_with_retry"), embed(["send_with_retry"])[0], k=3)
    tidy = [h for h in hits if streamed.subject(h.doc) == "Tidy up"]
    assert tidy and "send_with_retry" in tidy[0].matched_terms  # its change terms only


def test_second_publish_is_a_no_op_and_memory_limit_is_restored(publishes) -> None:  # type: ignore[no-untyped-def]
    first, again = publishes["result"], publishes["again"]
    assert first.changed and not again.changed and again.version == first.version
    assert first.commits == again.commits == len(publishes["corpus"].hashes)
    assert publishes["memory_limit"] != "256.0 MiB"  # the publish's cap was put back


def test_fingerprint_follows_reachability_and_vectors(publishes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from symbiotic_assets.core.warehouse import connect
    from symbiotic_assets.search.commit_embeddings import corpus_fingerprint

    db = tmp_path / "copy.duckdb"
    shutil.copyfile(publishes["db"], db)
    key = publishes["model"]
    some = publishes["corpus"].hashes[3]
    with connect(db) as con:
        first = corpus_fingerprint(con, key)
        assert corpus_fingerprint(con, key, ["demo"]) == first
        assert corpus_fingerprint(con, key, ["elsewhere"]) != first
        con.execute("UPDATE git.commits SET is_reachable = false WHERE hash = ?", [some])
        assert corpus_fingerprint(con, key) != first
        con.execute("UPDATE git.commits SET is_reachable = true WHERE hash = ?", [some])
        assert corpus_fingerprint(con, key) == first
        con.execute(  # a vector of another model is not this corpus
            "INSERT INTO search.commit_embeddings SELECT repository, hash, 'other-model', "
            "text_sha256, vector, embedded_at FROM search.commit_embeddings WHERE hash = ?",
            [some],
        )
        assert corpus_fingerprint(con, key) == first
        con.execute(  # re-embedded
            "UPDATE search.commit_embeddings SET embedded_at = embedded_at + INTERVAL 1 SECOND "
            "WHERE hash = ? AND model = ?",
            [some, key],
        )
        assert corpus_fingerprint(con, key) != first


def test_serving_index_publishes_under_the_settings_resource_home(publishes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    import dagster as dg

    from symbiotic_assets.core.resources import (
        EmbedderResource,
        SettingsResource,
        WarehouseResource,
    )
    from symbiotic_assets.search.assets import serving_index
    from symbiotic_assets.search.index import load_published

    db = tmp_path / "copy.duckdb"
    shutil.copyfile(publishes["db"], db)
    home = tmp_path / "other-home"
    result = dg.materialize(
        [serving_index],
        resources={
            "warehouse": WarehouseResource(database=str(db)),
            "search_embedder": EmbedderResource(cache_dir=str(MODEL_CACHE)),
            "settings": SettingsResource(home=str(home)),
        },
    )
    assert result.success
    (mat,) = result.asset_materializations_for_node("search__serving_index")
    assert mat.metadata["published"].value is True
    assert mat.metadata["path"].value == str(home / "published" / "search")
    assert load_published(home / "published" / "search").size == len(publishes["corpus"].hashes)
