"""Click memory: boosts for commits clicked on similar past queries, nothing for the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from symbiotic_assets.search.clicks import ClickModel, ClickRecord, learn_click_model
from symbiotic_assets.search.index import CommitCorpus, SearchIndex
from symbiotic_assets.search.text import parse_query

DIM = 8
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def unit(*values: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(values)] = values
    return v / np.linalg.norm(v)


# Queries live in a toy vector space: "retry" ones point along axis 0, "theme" along axis 1.
VECTORS = {
    "retry backoff": unit(1.0),
    "where did we change the retry backoff": unit(1.0, 0.2),  # cosine 0.98 to the above
    "dark mode theme": unit(0.0, 1.0),  # cosine 0 to the retry queries
    "retry jitter": unit(1.0, 0.9),  # cosine 0.74: below a 0.8 threshold
}


def embed(queries: list[str]) -> np.ndarray:
    return np.stack([VECTORS[q] for q in queries])


def record(query: str, clicked: list[str], skipped: list[str] = (), days: float = 0) -> ClickRecord:  # type: ignore[assignment]  # fmt: skip
    return ClickRecord(query, T0 + timedelta(days=days), clicked, list(skipped))


def test_boost_for_a_similar_query_and_none_for_a_dissimilar_one():
    model = learn_click_model([record("retry backoff", ["a" * 40])], embed, threshold=0.8)
    near = model.boosts(VECTORS["where did we change the retry backoff"])
    assert set(near) == {"a" * 40}
    assert near["a" * 40].boost > 0 and near["a" * 40].queries == 1
    assert model.boosts(VECTORS["dark mode theme"]) == {}
    assert model.boosts(VECTORS["retry jitter"]) == {}  # 0.74 < 0.8
    assert learn_click_model([record("retry backoff", ["a" * 40])], embed, threshold=0.7).boosts(
        VECTORS["retry jitter"]
    )


def test_more_clicks_lift_more_and_skips_pull_down():
    h, other = "a" * 40, "b" * 40
    one = learn_click_model([record("retry backoff", [h])], embed)
    three = learn_click_model([record("retry backoff", [h], days=d) for d in (0, 1, 2)], embed)
    q = VECTORS["retry backoff"]
    assert three.boosts(q)[h].boost > one.boosts(q)[h].boost > 0
    assert three.boosts(q)[h].queries == 3
    skipped = learn_click_model(
        [record("retry backoff", [h], days=0)]
        + [record("retry backoff", [other], skipped=[h], days=d) for d in (1, 2, 3)],
        embed,
    )
    b = skipped.boosts(q)
    assert b[h].boost < 0 < b[other].boost  # clicked once, skipped three times
    assert b[h].skips > b[h].clicks


def test_recent_clicks_weigh_more():
    h, g = "a" * 40, "b" * 40
    model = learn_click_model(
        [record("retry backoff", [h], days=0), record("retry backoff", [g], days=365)],
        embed,
        half_life_days=90,
    )
    b = model.boosts(VECTORS["retry backoff"])
    assert b[g].boost > b[h].boost > 0


def test_deterministic_and_round_trips_through_json():
    recs = [record("retry backoff", ["a" * 40], ["c" * 40]), record("dark mode theme", ["b" * 40])]
    m1 = learn_click_model(recs, embed)
    m2 = learn_click_model(list(reversed(recs)), embed)
    q = VECTORS["where did we change the retry backoff"]
    assert m1.boosts(q) == m2.boosts(q)
    back = ClickModel.from_json(m1.to_json())
    assert back.boosts(q) == m1.boosts(q)
    assert back.queries == m1.queries and np.array_equal(back.vectors, m1.vectors)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="threshold"):
        learn_click_model([], embed, threshold=0)
    with pytest.raises(ValueError, match="half_life"):
        learn_click_model([], embed, half_life_days=0)


def small_index() -> SearchIndex:
    subjects = [
        "Wait longer between attempts",
        "Tune connection pool defaults",
        "Add a dark mode theme",
        "Fix typo in README",
    ]
    vectors = np.stack(
        [unit(0.6, 0.0, 0.8), unit(1.0, 0.0, 0.1), unit(0.0, 1.0), unit(0.0, 0.0, 0.0, 1.0)]
    )
    corpus = CommitCorpus(
        hashes=[f"{i:x}" * 40 for i in range(1, 5)],
        repositories=["demo"] * 4,
        authors=["alice"] * 4,
        authored_at=np.arange(4, dtype=np.int64) * 86_400,
        is_merge=np.zeros(4, dtype=bool),
        subjects=subjects,
        texts=subjects,
        paths=[[] for _ in subjects],
        vectors=vectors,
    )
    return SearchIndex.build(corpus, "toy@torch")


def ranking(index: SearchIndex, query: str, clicks) -> list[tuple[int, float]]:  # type: ignore[no-untyped-def]  # fmt: skip
    hits = index.rank(parse_query(query), VECTORS[query], k=4, clicks=clicks)
    return [(h.doc, h.score) for h in hits]


def test_the_index_applies_boosts_only_to_similar_queries():
    index = small_index()
    backoff = next(d for d in range(index.size) if "attempts" in index.subject(d))
    before = ranking(index, "where did we change the retry backoff", clicks=None)
    assert before[0][0] != backoff  # the toy vectors put "Tune connection pool" first
    model = learn_click_model(
        [
            record("retry backoff", [index.hash_of(backoff)], [index.hash_of(before[0][0])], day)
            for day in range(3)
        ],
        embed,
        strength=3.0,
    )
    after = ranking(index, "where did we change the retry backoff", clicks=model)
    assert after[0][0] == backoff
    # No similar past query: exactly the unlearned ranking, scores included.
    assert ranking(index, "dark mode theme", clicks=model) == ranking(
        index, "dark mode theme", clicks=None
    )
    hit = index.rank(parse_query("retry backoff"), VECTORS["retry backoff"], k=1, clicks=model)[0]
    assert hit.doc == backoff and hit.click is not None and hit.click.queries == 3
