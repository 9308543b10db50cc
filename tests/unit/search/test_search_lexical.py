"""BM25 on a toy corpus, checked against the formula by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from symbiotic_assets.search.lexical import BM25Index

DOCS = [
    ["retry", "backoff", "retry"],
    ["retry", "timeout"],
    ["logging", "format", "output", "color"],
]


def test_bm25_scores_match_the_formula():
    k1, b = 1.2, 0.75
    index = BM25Index.build(DOCS, k1=k1, b=b)
    n, avg = 3, (3 + 2 + 4) / 3

    def expected(doc: list[str], term: str) -> float:
        tf = doc.count(term)
        if tf == 0:
            return 0.0
        df = sum(term in d for d in DOCS)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / avg))

    scores = index.dense_scores(["retry", "backoff"])
    for i, doc in enumerate(DOCS):
        assert scores[i] == pytest.approx(
            expected(doc, "retry") + expected(doc, "backoff"), rel=1e-5
        )
    assert scores[2] == 0.0
    assert scores[0] > scores[1]  # two retries and the rarer backoff


def test_rare_terms_weigh_more_and_unknown_terms_score_nothing():
    index = BM25Index.build(DOCS)
    assert index.idf[index.vocabulary["backoff"]] > index.idf[index.vocabulary["retry"]]
    docs, scores = index.score(["nonexistent"])
    assert len(docs) == 0 and len(scores) == 0


def test_top_is_sorted_and_respects_the_mask():
    index = BM25Index.build(DOCS)
    docs, scores = index.top(["retry"], 5)
    assert docs.tolist() == [0, 1] and scores[0] >= scores[1]
    docs, _ = index.top(["retry"], 5, mask=np.array([False, True, True]))
    assert docs.tolist() == [1]


def test_save_and_load_round_trip(tmp_path):
    index = BM25Index.build(DOCS)
    index.save(tmp_path)
    again = BM25Index.load(tmp_path)
    assert again.vocabulary == index.vocabulary
    np.testing.assert_allclose(again.dense_scores(["retry"]), index.dense_scores(["retry"]))


def test_invalid_parameters_are_named():
    with pytest.raises(ValueError, match="b=2"):
        BM25Index.build(DOCS, b=2)


@pytest.mark.parametrize("dense_factor", [0, 32, 10**9], ids=["searched", "default", "dense"])
def test_top_reads_impact_heads_and_equals_the_exhaustive_sum(monkeypatch, dense_factor):
    """Impact-ordered top-k (MaxScore) gives the exhaustive BM25 top-k: same docs, same scores,
    whether documents are looked up in the posting lists by binary search or through the
    dense buffer."""
    import symbiotic_assets.search.lexical as lexical

    monkeypatch.setattr(lexical, "SUM_ALL_BELOW", 0)  # take the pruned path on this small corpus
    monkeypatch.setattr(lexical, "DENSE_LOOKUP_FACTOR", dense_factor)
    import random

    rng = random.Random(7)
    words = [f"w{i}" for i in range(300)]
    common = ["fix", "add", "test", "update"]
    docs = [
        rng.choices(common, k=rng.randint(1, 3)) + rng.choices(words, k=rng.randint(2, 12))
        for _ in range(20_000)
    ]
    index = BM25Index.build(docs)
    mask = np.random.default_rng(1).random(len(docs)) < 0.1
    queries = [
        ["fix"],
        ["fix", "add"],
        ["fix", "w3"],
        ["w1", "w2", "test"],
        ["update", "add", "fix"],
    ]
    for terms in queries:
        for n in (1, 10, 100):
            for m in (None, mask):
                got = index.top(terms, n, m)
                want = index.top_exhaustive(terms, n, m)
                assert np.array_equal(got[1], want[1]), (terms, n)  # identical scores
                assert np.array_equal(got[0], want[0]), (terms, n)  # ties broken alike
                dense = index.dense_scores(terms)
                assert np.allclose(got[1], dense[got[0]])
                if m is not None:
                    assert m[got[0]].all()


def mapped(array: np.ndarray) -> bool:
    import mmap

    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base is not None


def test_saved_index_opens_memory_mapped_and_ranks_the_same(tmp_path):
    index = BM25Index.build(DOCS * 50)
    index.save(tmp_path)
    again = BM25Index.load(tmp_path)
    assert mapped(again.weights.data) and mapped(again.impact_docs)  # no copy at open
    for terms in (["retry"], ["retry", "backoff"], ["color", "timeout"]):
        assert np.array_equal(index.top(terms, 5)[0], again.top(terms, 5)[0])
        assert np.array_equal(index.top(terms, 5)[1], again.top(terms, 5)[1])


def test_best_sorts_only_the_head_but_breaks_ties_like_a_full_sort():
    from symbiotic_assets.search.lexical import _best

    rng = np.random.default_rng(3)
    docs = rng.permutation(5_000).astype(np.int64)
    scores = rng.integers(0, 6, 5_000).astype(np.float32)  # hundreds of ties at every score
    for n in (1, 7, 100, 1_000):
        got = _best(docs, scores, n)
        order = np.lexsort((docs, -scores))[:n]
        assert np.array_equal(got[0], docs[order]) and np.array_equal(got[1], scores[order])
