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
