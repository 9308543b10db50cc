"""Fusion, exact identifiers, filters and the approximate index, on hand-made vectors.

The vectors are synthetic (a "topic" direction per commit) so that these tests
say exactly which signal should win; the real model is exercised in the
integration tests.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from search_fixtures import DIM, make_corpus, unit

from symbiotic_assets.core.vectors import VectorIndex
from symbiotic_assets.search.index import SearchIndex, exact_top
from symbiotic_assets.search.ranker import RankerWeights
from symbiotic_assets.search.text import parse_query


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


def h(i: int) -> str:
    return hashlib.sha1(str(i).encode()).hexdigest()


ROWS = [
    {"hash": h(0), "subject": "Add exponential retry backoff", "paths": ["src/http/retry.py"]},
    {
        "hash": h(1),
        "subject": "Add compute_checksum helper",
        "body": "compute_checksum() hashes files in chunks",
        "paths": ["src/upload/checksum.py"],
    },  # fmt: skip
    {"hash": h(2), "subject": "Refactor connection pooling (#1234)", "paths": ["src/db/pool.py"]},
    {
        "hash": h(3),
        "subject": "Update CI workflow",
        "paths": [".github/workflows/ci.yml"],
        "author": "Bob",
        "ts": 1_600_000_000,
    },  # fmt: skip
    {"hash": h(4), "subject": "Merge branch 'feature'", "merge": True},
    {"hash": h(5), "subject": "Tune retry timeouts for slow networks", "paths": ["src/net.py"]},
]


def build(rng: np.random.Generator) -> tuple[SearchIndex, np.ndarray]:
    topics = np.stack([unit(rng) for _ in ROWS])
    vectors = np.stack([unit(rng, t, 0.3) for t in topics])
    return SearchIndex.build(make_corpus(ROWS, vectors), "test@onnx"), topics


def top_hash(index: SearchIndex, query: str, vec: np.ndarray, **kw) -> str:
    hits = index.rank(parse_query(query), vec, k=3, **kw)
    return index.hash_of(hits[0].doc)


def test_semantic_signal_alone_finds_the_topic(rng):
    index, topics = build(rng)
    assert top_hash(index, "zzz unrelated words", topics[5]) == h(5)


def test_fusion_prefers_the_commit_both_signals_agree_on(rng):
    index, topics = build(rng)
    # semantically between 0 and 5, lexically only 0 has "backoff"
    vec = (topics[0] + topics[5]) / np.linalg.norm(topics[0] + topics[5])
    hits = index.rank(parse_query("retry backoff"), vec, k=6)
    assert index.hash_of(hits[0].doc) == h(0)
    assert "backoff" in hits[0].matched_terms


def test_exact_identifiers_win_against_the_semantic_signal(rng):
    index, topics = build(rng)
    away = topics[3]  # the model would say "CI workflow"
    assert top_hash(index, h(1)[:7], away) == h(1)
    assert top_hash(index, f"what happened in {h(2)[:10]}", away) == h(2)
    assert top_hash(index, "#1234", away) == h(2)
    assert top_hash(index, "compute_checksum", away) == h(1)


def test_hash_prefix_shorter_than_seven_is_not_an_identifier(rng):
    index, topics = build(rng)
    assert parse_query(h(1)[:6]).hex_prefixes == ()


def test_merges_are_filtered_unless_asked_for(rng):
    index, topics = build(rng)
    mask = index.filter_mask()
    hits = index.rank(parse_query("merge feature branch"), topics[4], k=6, mask=mask)
    assert h(4) not in [index.hash_of(x.doc) for x in hits]
    hits = index.rank(parse_query("merge feature branch"), topics[4], k=6,
                      mask=index.filter_mask(include_merges=True))  # fmt: skip
    assert index.hash_of(hits[0].doc) == h(4)


def test_filters_by_author_date_path_and_repository(rng):
    from datetime import UTC, datetime

    index, _ = build(rng)

    def allowed(mask: np.ndarray | None) -> set[str]:
        assert mask is not None
        return {index.hash_of(d) for d in np.flatnonzero(mask)}

    assert allowed(index.filter_mask(authors=["bob"])) == {h(3)}
    assert allowed(index.filter_mask(until=datetime(2021, 1, 1, tzinfo=UTC))) == {h(3)}
    assert allowed(index.filter_mask(paths=["src/db"])) == {h(2)}
    assert allowed(index.filter_mask(repositories=["other"])) == set()


def test_ann_recall_against_exact_on_clustered_vectors(rng):
    centers = np.stack([unit(rng) for _ in range(50)])
    vectors = np.stack([unit(rng, centers[i % 50], 0.8) for i in range(20_000)])
    ann = VectorIndex.build(vectors, approximate_above=10_000)
    assert ann.ann is not None and ann.ann.ntotal == len(vectors)  # every row filed once
    recalls = []
    for i in range(50):
        q = unit(rng, centers[i], 0.8)
        exact, _ = exact_top(vectors, q, 10)
        approx, _ = ann.search(q, 10)
        recalls.append(len(set(exact) & set(approx)) / 10)
    assert np.mean(recalls) >= 0.9


def test_index_round_trips_through_files(rng, tmp_path):
    index, topics = build(rng)
    index.weights = RankerWeights(weights={"semantic": 1.5}, source="learned")
    index.save(tmp_path / "v")
    again = SearchIndex.load(tmp_path / "v")
    assert again.weights.weights["semantic"] == 1.5 and again.weights.source == "learned"
    assert [again.hash_of(d) for d in range(again.size)] == [
        index.hash_of(d) for d in range(index.size)
    ]
    assert again.subject(1) == ROWS[1]["subject"]
    assert again.doc_paths(0) == ["src/http/retry.py"]
    assert top_hash(again, "#1234", topics[0]) == h(2)


def test_build_rejects_columns_of_different_lengths(rng):
    with pytest.raises(ValueError, match="vectors"):
        make_corpus(ROWS, np.zeros((2, DIM), dtype=np.float32))


def test_rank_with_the_embedding_on_the_side_thread_equals_rank_with_the_vector(rng):
    """``rank`` given a function that embeds runs it (and the vector search) on a worker
    thread while BM25 runs here; the hits must be exactly those of the plain call."""
    import threading

    index, topics = build(rng)
    no_merges = index.filter_mask(include_merges=False)
    threads: list[str] = []

    def embed(vec: np.ndarray):
        def run() -> np.ndarray:
            threads.append(threading.current_thread().name)
            return vec

        return run

    for query, vec, mask in [
        ("retry backoff", topics[0], None),
        ("zzz unrelated words", topics[5], no_merges),
        (h(1)[:7], topics[3], None),
        ("merge feature branch", topics[4], no_merges),
    ]:
        plain = index.rank(parse_query(query), vec, k=6, mask=mask)
        side = index.rank(parse_query(query), embed(vec), k=6, mask=mask)
        assert [(x.doc, x.score, x.matched_terms) for x in side] == [
            (x.doc, x.score, x.matched_terms) for x in plain
        ]
    assert threads and all(name != threading.current_thread().name for name in threads)
