"""Click-through learning: it moves toward what people click and leaves the rest alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pytest

from symbiotic_assets.search.ranker import (
    DEFAULT_WEIGHTS,
    FEATURE_INDEX,
    FEATURES,
    ClickedSearch,
    RankerWeights,
    join_clicks,
    learn_weights,
    preference_pairs,
)


def feats(**values: float) -> np.ndarray:
    row = np.zeros(len(FEATURES))
    for k, v in values.items():
        row[FEATURE_INDEX[k]] = v
    return row


def lexical_lovers(n: int = 30) -> list[ClickedSearch]:
    """Users skip the semantically closest result and click the one with the query's words."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        top = feats(semantic=0.95 + rng.random() * 0.02, lexical=0.0)
        wanted = feats(semantic=0.40, lexical=0.6)
        other = feats(semantic=0.50, lexical=0.2)
        out.append(
            ClickedSearch("q", np.stack([top, wanted, other]), np.array([False, True, False]))
        )
    return out


def test_no_clicks_leaves_the_weights_exactly_as_they_were():
    learned = learn_weights([], RankerWeights())
    assert learned.weights == DEFAULT_WEIGHTS
    assert learned.stats["pairs"] == 0


def test_learning_moves_weight_toward_the_clicked_features():
    prior = RankerWeights()
    learned = learn_weights(lexical_lovers(), prior)
    assert learned.source == "learned"
    assert learned.weights["lexical"] > prior.weights["lexical"] + 0.05
    # the pairs it learned from are now ordered the way users ordered them
    assert learned.stats["pairs_ordered_after"] > learned.stats["pairs_ordered_before"]
    # features that never differed between clicked and skipped results stay where they were
    assert learned.weights["hash_prefix"] == pytest.approx(prior.weights["hash_prefix"])


def test_regularization_keeps_plain_queries_ranked_as_before():
    learned = learn_weights(lexical_lovers(5), RankerWeights(), l2=0.3)
    # a plain query whose results differ clearly on meaning keeps its order
    results = np.stack([feats(semantic=0.8, lexical=0.3), feats(semantic=0.4, lexical=0.5)])
    before = np.argsort(-(results @ RankerWeights().vector()))
    after = np.argsort(-(results @ learned.vector()))
    assert before.tolist() == after.tolist()
    moved = np.abs(learned.vector() - RankerWeights().vector()).max()
    assert 0 < moved < 3


def test_pairs_follow_skip_above_and_next():
    s = ClickedSearch("q", np.eye(len(FEATURES))[:4], np.array([False, False, True, False]))
    pairs = preference_pairs([s])
    assert len(pairs) == 3  # ranks 1 and 2 skipped above, rank 4 read right below


def test_join_clicks_by_search_id_and_by_query():
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    searches = [
        SimpleNamespace(
            search_id="s1", query="retry", results_shown=["aa" * 20, "bb" * 20], timestamp=t0
        ),  # fmt: skip
        SimpleNamespace(
            search_id=None,
            query="logging",
            results_shown=["cc" * 20],
            timestamp=t0 + timedelta(seconds=1),
        ),  # fmt: skip
    ]
    clicks = [
        SimpleNamespace(search_id="s1", query="retry", clicked_hash="bb" * 20, timestamp=t0),
        SimpleNamespace(
            search_id=None,
            query="logging",
            clicked_hash="cccccccc",
            timestamp=t0 + timedelta(seconds=2),
        ),  # fmt: skip
        SimpleNamespace(
            search_id=None, query="never searched", clicked_hash="dd" * 20, timestamp=t0
        ),  # fmt: skip
    ]
    logged = join_clicks(searches, clicks)
    assert logged[0].clicked == {"bb" * 20}
    assert logged[1].clicked == {"cc" * 20}  # the prefix resolved to the full hash shown


def test_weights_json_round_trip_and_unknown_features_ignored():
    w = RankerWeights(weights={"semantic": 3.0, "retired_feature": 9.0}, source="learned")
    again = RankerWeights.from_json(w.to_json())
    assert again.vector()[FEATURE_INDEX["semantic"]] == 3.0
    assert again.vector()[FEATURE_INDEX["lexical"]] == DEFAULT_WEIGHTS["lexical"]
    with pytest.raises(ValueError, match="weights"):
        RankerWeights.from_json("[]")
