"""The recommender's math on hand-made vectors: no model, no store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from symbiotic_assets.memory.recommender import (
    SECONDS_PER_DAY,
    AttemptMemory,
    AttemptRecord,
    FeedbackStats,
    IsotonicCalibrator,
    PatternOutcome,
    RecommenderConfig,
    RecommenderState,
    apply_pattern_outcome,
    expected_calibration_error,
    recency_weight,
    recommend,
    smoothed_success_rate,
    update_pattern_weights,
)

DIM = 8
NOW = 1_750_000_000.0


def unit(*components: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(components)] = components
    return v / np.linalg.norm(v)


def attempt(
    agent: str, strategy: str, success: bool, days_ago: float = 1.0, issue_type: str = "security"
) -> AttemptRecord:
    return AttemptRecord(
        issue_type,
        "msg",
        "src/a.py",
        "bandit",
        agent,
        strategy,
        success,
        NOW - days_ago * SECONDS_PER_DAY,
    )


def memory_of(rows: list[tuple[AttemptRecord, np.ndarray]]) -> AttemptMemory:
    mem = AttemptMemory(dim=DIM)
    for rec, vec in rows:
        mem.add(rec, vec)
    return mem


def test_smoothing_keeps_one_lucky_success_below_certainty() -> None:
    assert smoothed_success_rate(1, 1) == pytest.approx(2 / 3)
    assert smoothed_success_rate(1, 1) < smoothed_success_rate(40, 50)


def test_failures_count_in_the_success_rate() -> None:
    only_successes = smoothed_success_rate(5, 5)
    with_failures = smoothed_success_rate(5, 15)
    assert with_failures < 0.5 < only_successes


def test_smoothing_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError, match="successes=3"):
        smoothed_success_rate(3, 2)


def test_recency_halves_at_the_half_life() -> None:
    w = recency_weight(np.array([0.0, 30 * SECONDS_PER_DAY, 60 * SECONDS_PER_DAY, -5.0]), 30.0)
    assert w == pytest.approx([1.0, 0.5, 0.25, 1.0])


def test_failing_strategy_loses_to_a_reliable_one_despite_more_attempts() -> None:
    q = unit(1, 0)
    rows = [(attempt("SecurityAgent", "security_fix", i < 2), unit(1, 0.1)) for i in range(10)]
    rows += [(attempt("PatternAgent", "pattern_replace", True), unit(1, 0.12)) for _ in range(4)]
    rec = recommend(q, "security", memory_of(rows), now=NOW)
    assert rec is not None
    assert rec.agent_strategy == "PatternAgent:pattern_replace"
    probs = {c.agent_strategy: c.probability for c in rec.alternatives}
    assert probs["SecurityAgent:security_fix"] < 0.35
    assert probs["PatternAgent:pattern_replace"] < 1.0


def test_one_lucky_success_does_not_beat_a_long_good_record() -> None:
    q = unit(1, 0)
    rows = [(attempt("A", "lucky", True), unit(1, 0.05))]
    rows += [(attempt("B", "steady", i % 10 != 0), unit(1, 0.05)) for i in range(30)]
    rec = recommend(q, "security", memory_of(rows), now=NOW)
    assert rec is not None and rec.agent_strategy == "B:steady"


def test_recent_outcomes_outweigh_old_ones() -> None:
    q = unit(1, 0)
    rows = [(attempt("A", "old_way", True, days_ago=300), unit(1, 0.05)) for _ in range(20)]
    rows += [(attempt("A", "old_way", False, days_ago=2), unit(1, 0.05)) for _ in range(3)]
    rows += [(attempt("B", "new_way", i == 0, days_ago=3), unit(1, 0.05)) for i in range(2)]
    rec = recommend(q, "security", memory_of(rows), now=NOW)
    assert rec is not None and rec.agent_strategy == "B:new_way"
    # without recency (a very long half-life) the old record would still win
    slow = RecommenderState(config=RecommenderConfig(half_life_days=1e6))
    mem_slow = AttemptMemory(dim=DIM, half_life_days=1e6)
    for rec_, vec in rows:
        mem_slow.add(rec_, vec)
    old = recommend(q, "security", mem_slow, slow, now=NOW)
    assert old is not None and old.agent_strategy == "A:old_way"


def test_similarity_threshold_excludes_dissimilar_attempts() -> None:
    q = unit(1, 0)
    below = unit(0.29, np.sqrt(1 - 0.29**2))  # cosine 0.29 with q
    above = unit(0.31, np.sqrt(1 - 0.31**2))  # cosine 0.31 with q
    rows = [(attempt("Far", "x", True, issue_type="formatting"), below) for _ in range(5)]
    rows += [(attempt("Near", "y", False, issue_type="formatting"), above)]
    rec = recommend(q, "security", memory_of(rows), now=NOW)
    assert rec is not None
    assert {e.agent for e in rec.evidence} == {"Near"}
    assert all(e.similarity >= 0.3 for e in rec.evidence)


def test_nothing_to_go_on_returns_none() -> None:
    q = unit(1, 0)
    rows = [(attempt("Far", "x", True, issue_type="formatting"), unit(0, 1))]
    assert recommend(q, "security", memory_of(rows), now=NOW) is None


def test_follow_rate_breaks_near_ties() -> None:
    q = unit(1, 0)
    rows = [(attempt("A", "a", i % 2 == 0), unit(1, 0.05)) for i in range(10)]
    rows += [(attempt("B", "b", i % 2 == 0), unit(1, 0.05)) for i in range(10)]
    mem = memory_of(rows)
    ignored = RecommenderState(feedback={"A:a": FeedbackStats(shown=50, followed=2, succeeded=1)})
    rec = recommend(q, "security", mem, ignored, now=NOW)
    assert rec is not None and rec.agent_strategy == "B:b"
    followed = RecommenderState(feedback={"B:b": FeedbackStats(shown=50, followed=2, succeeded=1)})
    rec = recommend(q, "security", mem, followed, now=NOW)
    assert rec is not None and rec.agent_strategy == "A:a"


def test_feedback_counts_are_validated() -> None:
    with pytest.raises(ValueError, match="followed"):
        FeedbackStats(shown=1, followed=2, succeeded=0)


def test_pattern_weights_strengthen_successes_and_weaken_failures_within_bounds() -> None:
    w = update_pattern_weights({}, [PatternOutcome("security|A:a", True, 0.5)])
    assert w["security|A:a"] > 1.0
    w = update_pattern_weights(w, [PatternOutcome("security|A:a", False, 0.5)] * 3)
    assert w["security|A:a"] < 1.0
    many = update_pattern_weights({}, [PatternOutcome("p", False, 0.9)] * 10_000, learning_rate=0.5)
    assert many["p"] == pytest.approx(0.5)
    many = update_pattern_weights({}, [PatternOutcome("p", True, 0.1)] * 10_000, learning_rate=0.5)
    assert many["p"] == pytest.approx(2.0)


def test_in_place_update_follows_the_same_rule_and_copying_update_leaves_input_alone() -> None:
    outcomes = [PatternOutcome("p", True, 0.3), PatternOutcome("q", False, 0.8)] * 5
    before = {"p": 1.2}
    copied = update_pattern_weights(before, outcomes)
    assert before == {"p": 1.2}
    in_place = dict(before)
    for o in outcomes:
        apply_pattern_outcome(in_place, o)
    assert in_place == copied
    with pytest.raises(ValueError, match="expected=1.5"):
        apply_pattern_outcome(in_place, PatternOutcome("p", True, 1.5))


def test_pattern_weight_matching_its_expectation_stays_near_one() -> None:
    rng = np.random.default_rng(0)
    outcomes = [PatternOutcome("p", bool(rng.random() < 0.7), 0.7) for _ in range(5000)]
    w = update_pattern_weights({}, outcomes)
    assert 0.85 < w["p"] < 1.15


def test_isotonic_calibration_recovers_true_probabilities() -> None:
    rng = np.random.default_rng(1)
    raw = rng.random(20_000)
    true_p = raw**2  # raw scores are overconfident
    outcomes = rng.random(raw.size) < true_p
    before = expected_calibration_error(raw, outcomes)
    cal = IsotonicCalibrator.fit(raw[:10_000], outcomes[:10_000])
    after = expected_calibration_error(np.asarray(cal(raw[10_000:])), outcomes[10_000:])
    assert before > 0.1
    assert after < 0.03
    assert cal(0.9) == pytest.approx(0.81, abs=0.05)


def test_state_round_trips_through_json() -> None:
    cal = IsotonicCalibrator.fit([0.1, 0.4, 0.8, 0.9], [False, True, True, True])
    state = RecommenderState(
        config=RecommenderConfig(half_life_days=12.0),
        pattern_weights={"security|A:a": 1.3},
        feedback={"A:a": FeedbackStats(4, 2, 1)},
        calibrator=cal,
    )
    again = RecommenderState.from_json(state.to_json())
    assert again.config.half_life_days == 12.0
    assert again.pattern_weights == {"security|A:a": 1.3}
    assert again.feedback["A:a"].followed == 2
    assert again.calibrator(0.5) == pytest.approx(cal(0.5))
    with pytest.raises(ValueError, match="version"):
        RecommenderState.from_json(json.dumps({"version": 99}))


def test_ece_of_a_perfectly_calibrated_predictor_is_small() -> None:
    rng = np.random.default_rng(2)
    p = rng.random(50_000)
    y = rng.random(p.size) < p
    assert expected_calibration_error(p, y) < 0.01
    assert expected_calibration_error(np.full(1000, 0.9), np.zeros(1000)) == pytest.approx(0.9)


def test_memory_rejects_non_unit_vectors() -> None:
    mem = AttemptMemory(dim=DIM)
    with pytest.raises(ValueError, match="norm"):
        mem.add(attempt("A", "a", True), np.ones(DIM, dtype=np.float32))


def test_bulk_loaded_memory_matches_row_by_row() -> None:
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((200, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    recs = [
        attempt(
            f"A{i % 3}",
            "s",
            bool(i % 4),
            days_ago=float(i % 50),
            issue_type=("security", "formatting")[i % 2],
        )
        for i in range(200)
    ]
    one = memory_of(list(zip(recs, vecs, strict=True)))
    bulk = AttemptMemory.from_arrays(
        vecs,
        [r.issue_type for r in recs],
        [f"{r.agent}:{r.strategy}" for r in recs],
        np.array([r.success for r in recs]),
        np.array([r.timestamp for r in recs]),
    )
    for q in vecs[:20]:
        a = recommend(q, "security", one, now=NOW)
        b = recommend(q, "security", bulk, now=NOW)
        assert a is not None and b is not None
        assert a.agent_strategy == b.agent_strategy
        assert a.raw_probability == pytest.approx(b.raw_probability, rel=1e-6)


def test_ann_index_recall_and_save_load_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from symbiotic_assets.core.vectors import VectorIndex, load_index, recall_at_k

    rng = np.random.default_rng(4)
    centres = rng.standard_normal((50, 32)).astype(np.float32)
    rows = centres[rng.integers(0, 50, 20_000)] + 0.15 * rng.standard_normal((20_000, 32)).astype(
        np.float32
    )
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    ann = VectorIndex.build(rows, approximate_above=5_000, seed=0)
    assert ann.kind == "ivf-pq4fs"
    queries = rows[rng.integers(0, 20_000, 100)] + 0.05 * rng.standard_normal((100, 32)).astype(
        np.float32
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    assert recall_at_k(ann, rows, queries, k=10) >= 0.97
    assert recall_at_k(ann, rows, queries, k=64) >= 0.95
    loaded = load_index(ann.save(tmp_path / "ann"))
    ids, sims = loaded.search(queries[0], 10)
    ids2, sims2 = ann.search(queries[0], 10)
    assert np.array_equal(ids, ids2) and np.allclose(sims, sims2)
    assert np.allclose(sims, rows[ids] @ queries[0], atol=1e-5)
    with pytest.raises(ValueError, match="unit rows"):
        VectorIndex.build(rows * 2)


def test_from_codes_builds_the_same_memory_as_from_arrays() -> None:
    """The published form (codes into name lists) opens without per-row strings, same result."""
    rng = np.random.default_rng(2)
    n = 3_000
    rows = rng.standard_normal((n, 16)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    types = ["security", "lint", "type"]
    cands = ["Z:fix", "A:patch", "M:rewrite"]  # not sorted: ids must still follow sorted names
    tc, cc = rng.integers(0, 3, n), rng.integers(0, 3, n)
    ok, ts = rng.random(n) < 0.4, np.sort(rng.uniform(1.7e9, 1.75e9, n))
    a = AttemptMemory.from_arrays(
        rows, np.asarray(types, dtype=object)[tc], np.asarray(cands, dtype=object)[cc], ok, ts
    )
    b = AttemptMemory.from_codes(rows, types, tc, cands, cc, ok, ts)
    assert a.candidates == b.candidates == sorted(cands)
    assert np.array_equal(a.candidate_ids, b.candidate_ids)
    for t in types:
        assert a.type_stats(t, 1.76e9) == b.type_stats(t, 1.76e9)
        assert a.type_candidates(t) == b.type_candidates(t)
    q = rows[5]
    ra, rb = recommend(q, "lint", a, now=1.76e9), recommend(q, "lint", b, now=1.76e9)
    assert ra is not None and rb is not None
    assert (ra.agent_strategy, ra.raw_probability) == (rb.agent_strategy, rb.raw_probability)
    with pytest.raises(ValueError, match="issue_types: shape"):
        AttemptMemory.from_codes(rows, types, tc[:-1], cands, cc, ok, ts)
