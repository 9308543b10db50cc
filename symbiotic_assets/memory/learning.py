"""Continuous learning for the strategy recommender: pure orchestration over warehouse rows.

The assets in ``memory/assets.py`` read rows and vectors from the warehouse, call
the functions here, and write what they return; nothing here touches DuckDB or
Dagster, so the learning loop is testable on plain lists and arrays.

The loop (``learn``), run after every load of new outcomes:

1. **Replay** the history in time order (the last ``max_replay`` attempts; older
   ones only seed the memory). Before each attempt the recommender answers from
   the past only (an ``AttemptMemory`` holding the attempts before it), then the
   attempt's outcome is added. This is the honest way to measure a recommender
   on logs: it never sees the outcome it is asked to predict.
2. **Calibration**: when the replayed recommendation equals what the agent
   actually did, the logged outcome says whether following it succeeded; those
   ``(raw probability, success)`` pairs train the isotonic calibrator. The ECE
   reported is out of sample: the confidence at each step comes from a
   calibrator fitted on earlier pairs only (refitted every ``calibrate_every``).
3. **Pattern weights**: outcomes not seen by an earlier run (attempt id above the
   previous state's ``last_attempt_id``) update the persisted weights with the
   bounded multiplicative rule of ``update_pattern_weights``, the surprise
   measured against the probability the replay gave that pattern beforehand. So
   a run continues from the previous state instead of relearning from scratch,
   and a failure of a strategy that was expected to work lowers its weight.
4. **Feedback**: shown / followed / succeeded-when-followed counts per
   ``agent:strategy`` from ``memory.recommendation_feedback`` go into the state
   as they are (the follow factor in ``recommend``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from symbiotic_assets.memory.recommender import (
    AttemptMemory,
    AttemptRecord,
    FeedbackStats,
    IsotonicCalibrator,
    PatternOutcome,
    RecommenderConfig,
    RecommenderState,
    apply_pattern_outcome,
    expected_calibration_error,
    pattern_key,
    recommend,
)

#: Replayed attempts per run: bounds the daily run's cost (about 1 ms each) on long histories.
MAX_REPLAY = 20_000
CALIBRATE_EVERY = 100
#: Fewer followed pairs than this and the calibrator is not fitted (identity): too few to trust.
MIN_CALIBRATION_PAIRS = 20


@dataclass
class LearnedState:
    """A ``RecommenderState`` plus the bookkeeping that lets the next run continue from it."""

    state: RecommenderState = field(default_factory=RecommenderState)
    last_attempt_id: int = 0
    model: str = ""
    version: int = 0
    trained_at: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """One JSON document: kept in ``memory.recommender_state`` and published as state.json."""
        return json.dumps(
            {
                "state": json.loads(self.state.to_json()),
                "last_attempt_id": self.last_attempt_id,
                "model": self.model,
                "version": self.version,
                "trained_at": self.trained_at,
                "metrics": self.metrics,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> LearnedState:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"learned state: not JSON ({exc})") from exc
        if not isinstance(data, dict) or "state" not in data:
            raise ValueError("learned state: no 'state' object")
        return cls(
            state=RecommenderState.from_json(json.dumps(data["state"])),
            last_attempt_id=int(data.get("last_attempt_id") or 0),
            model=str(data.get("model") or ""),
            version=int(data.get("version") or 0),
            trained_at=str(data.get("trained_at") or ""),
            metrics=dict(data.get("metrics") or {}),
        )


@dataclass(frozen=True)
class ReplayMetrics:
    """What the replay measured (all out of sample: recommendations from the past only)."""

    replayed: int
    answered: int
    followed: int  # recommendation equal to what the agent did
    hit_rate: float  # of replayed successful attempts: share where we had recommended that fix
    success_when_followed: float
    ece: float | None  # out-of-sample calibration error on followed recommendations
    calibration_pairs: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "replayed": self.replayed,
            "answered": self.answered,
            "followed": self.followed,
            "hit_rate": round(self.hit_rate, 4),
            "success_when_followed": round(self.success_when_followed, 4),
            "ece": None if self.ece is None else round(self.ece, 4),
            "calibration_pairs": self.calibration_pairs,
        }


def records_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[AttemptRecord]:
    """Warehouse rows (``memory.fix_attempts`` columns) to recommender records, in given order."""
    return [AttemptRecord.from_mapping(r) for r in rows]


def time_order(records: Sequence[AttemptRecord]) -> np.ndarray:
    """Indices sorting attempts by (timestamp, id): the order outcomes became known."""
    ids = [int(r.attempt_id) if r.attempt_id and r.attempt_id.isdigit() else 0 for r in records]
    ts = [r.timestamp for r in records]
    return np.lexsort((np.asarray(ids), np.asarray(ts, dtype=np.float64)))


def feedback_stats(rows: Iterable[Mapping[str, Any]]) -> dict[str, FeedbackStats]:
    """Per ``agent:strategy``: times shown, followed, and succeeded when followed.

    Rows without agent or strategy cannot be attributed and are skipped; a row
    that says followed without shown is counted as shown (the store forbids it,
    older imports may not have).
    """
    out: dict[str, FeedbackStats] = {}
    for r in rows:
        agent, strategy = r.get("agent"), r.get("strategy")
        if not agent or not strategy:
            continue
        key = f"{agent}:{strategy}"
        cur = out.get(key) or FeedbackStats()
        followed = bool(r.get("followed"))
        shown = bool(r.get("shown")) or followed
        succeeded = followed and r.get("outcome") == "succeeded"
        out[key] = FeedbackStats(
            shown=cur.shown + int(shown),
            followed=cur.followed + int(followed),
            succeeded=cur.succeeded + int(succeeded),
        )
    return out


def learn(
    records: Sequence[AttemptRecord],
    vectors: np.ndarray,
    previous: LearnedState | None = None,
    feedback: Mapping[str, FeedbackStats] | None = None,
    config: RecommenderConfig | None = None,
    max_replay: int = MAX_REPLAY,
    calibrate_every: int = CALIBRATE_EVERY,
) -> tuple[LearnedState, ReplayMetrics]:
    """Replay, calibrate and update pattern weights (see the module docstring).

    ``records`` and ``vectors`` are aligned and may be in any order; they are
    replayed sorted by time. Returns the new state (version + 1) and the replay
    metrics; ``previous`` is not modified.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape[0] != len(records):
        raise ValueError(f"vectors: {vectors.shape[0]} rows for {len(records)} attempts")
    if max_replay < 0:
        raise ValueError(f"max_replay={max_replay}: must be >= 0")
    previous = previous or LearnedState()
    cfg = config or previous.state.config
    order = time_order(records)
    dim = vectors.shape[1] if vectors.ndim == 2 and vectors.shape[1] else 384
    memory = AttemptMemory(dim=dim, half_life_days=cfg.half_life_days)
    start = max(0, len(order) - max_replay)
    if start:
        seed = order[:start]
        memory.add_many([records[i] for i in seed], vectors[seed])

    # The replay's own state learns as it goes, from weight 1.0, so each step uses
    # only what was known then; the persisted weights continue from the previous run.
    replay_state = RecommenderState(config=cfg)
    weights = dict(previous.state.pattern_weights)
    last_seen = previous.last_attempt_id
    pairs_x: list[float] = []
    pairs_y: list[bool] = []
    online_conf: list[float] = []
    online_y: list[float] = []
    answered = hits = successes = 0
    max_id = last_seen
    for n_step, i in enumerate(order[start:]):
        rec_i = records[i]
        q = vectors[i]
        logged = f"{rec_i.agent}:{rec_i.strategy}"
        rec = recommend(q, rec_i.issue_type, memory, replay_state, now=rec_i.timestamp)
        expected = 0.5
        if rec is not None:
            answered += 1
            expected = next(
                (c.probability for c in rec.alternatives if c.agent_strategy == logged), 0.5
            )
            if rec.agent_strategy == logged:
                pairs_x.append(rec.raw_probability)
                pairs_y.append(rec_i.success)
                online_conf.append(rec.confidence)
                online_y.append(float(rec_i.success))
        if rec_i.success:
            successes += 1
            hits += int(rec is not None and rec.agent_strategy == logged)
        outcome = PatternOutcome(
            pattern_key(rec_i.issue_type, rec_i.agent, rec_i.strategy), rec_i.success, expected
        )
        apply_pattern_outcome(replay_state.pattern_weights, outcome)
        attempt_id = _id(rec_i)
        if attempt_id > last_seen:
            apply_pattern_outcome(weights, outcome)
        max_id = max(max_id, attempt_id)
        memory.add(rec_i, q)
        if (n_step + 1) % calibrate_every == 0 and len(pairs_x) >= MIN_CALIBRATION_PAIRS:
            replay_state.calibrator = IsotonicCalibrator.fit(pairs_x, pairs_y)

    calibrator = (
        IsotonicCalibrator.fit(pairs_x, pairs_y)
        if len(pairs_x) >= MIN_CALIBRATION_PAIRS
        else IsotonicCalibrator()
    )
    metrics = ReplayMetrics(
        replayed=len(order) - start,
        answered=answered,
        followed=len(pairs_x),
        hit_rate=hits / successes if successes else 0.0,
        success_when_followed=float(np.mean(pairs_y)) if pairs_y else 0.0,
        ece=expected_calibration_error(online_conf, online_y) if online_conf else None,
        calibration_pairs=len(pairs_x),
    )
    state = RecommenderState(
        config=cfg,
        pattern_weights=weights,
        feedback=dict(feedback or {}),
        calibrator=calibrator,
    )
    learned = LearnedState(
        state=state,
        last_attempt_id=max_id,
        model=previous.model,
        version=previous.version + 1,
        trained_at=datetime.now(UTC).isoformat(),
        metrics=metrics.as_dict(),
    )
    return learned, metrics


def _id(record: AttemptRecord) -> int:
    try:
        return int(record.attempt_id or 0)
    except ValueError:
        return 0
