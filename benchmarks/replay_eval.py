"""Offline replay: does the recommender pick strategies that work, and is its confidence honest?

The generated history (``benchmarks.fix_history``) is replayed in time order.
At each attempt every method recommends from the past only; then the logged
attempt's outcome arrives and each method updates its state (our recommender:
memory, feedback, pattern weights, and every ``--calibrate-every`` attempts a
calibrator refitted on the recommendations that were followed so far).

Scores, per method, over the attempts after the burn-in:

* ``best_hit``: the recommendation equals the hidden best ``agent:strategy``.
* ``success``: the recommendation succeeds when followed (a Bernoulli draw from
  the hidden truth, with the same random number for every method, so methods
  differ only by what they chose).
* ``exp_success``: mean true success probability of the recommendations.
* ``ece``: expected calibration error of the stated confidence against
  ``success`` (10 equal-width bins).

Baselines: the most frequent ``agent:strategy`` per issue type (confidence: its
success rate on that type so far), and unweighted nearest neighbours (the 20
most similar past attempts; the candidate with most successes among them;
confidence: its success share among them).

Run: ``python -m benchmarks.replay_eval --n 6000 --seed 7``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from benchmarks.fix_history import FixHistory, generate_history
from symbiotic_assets.core.embedding import IssueEmbedder, issue_text
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
    to_epoch,
)

NN_K = 20


@dataclass
class MethodResult:
    name: str
    best_hit: list[float] = field(default_factory=list)
    success: list[float] = field(default_factory=list)
    exp_success: list[float] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    answered: int = 0
    scored: int = 0

    def summary(self) -> dict[str, float]:
        return {
            "best_hit": float(np.mean(self.best_hit)) if self.best_hit else 0.0,
            "success": float(np.mean(self.success)) if self.success else 0.0,
            "exp_success": float(np.mean(self.exp_success)) if self.exp_success else 0.0,
            "ece": expected_calibration_error(self.confidence, self.success)
            if self.confidence
            else 1.0,
            "coverage": self.answered / self.scored if self.scored else 0.0,
        }


def embed_history(history: FixHistory, embedder: IssueEmbedder | None = None) -> np.ndarray:
    """Vectors for every attempt in the documented issue text format."""
    embedder = embedder or IssueEmbedder()
    texts = [issue_text(a.issue_type, a.message, a.file_path, a.stage) for a in history.attempts]
    return embedder.embed_many(texts, batch_size=32)


def replay(
    history: FixHistory,
    vectors: np.ndarray,
    config: RecommenderConfig | None = None,
    burn_in: float = 0.1,
    calibrate_every: int = 200,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Replay ``history`` and return the summary per method (see the module docstring)."""
    if vectors.shape[0] != len(history.attempts):
        raise ValueError(f"vectors: {vectors.shape[0]} rows for {len(history.attempts)} attempts")
    if not 0.0 <= burn_in < 1.0:
        raise ValueError(f"burn_in={burn_in}: must be within [0, 1)")
    config = config or RecommenderConfig()
    state = RecommenderState(config=config)
    memory = AttemptMemory(dim=vectors.shape[1], half_life_days=config.half_life_days)
    calib_scores: list[float] = []
    calib_outcomes: list[bool] = []

    type_counts: dict[str, Counter[str]] = defaultdict(Counter)
    type_success: dict[str, Counter[str]] = defaultdict(Counter)

    rng = random.Random(seed)
    results = {n: MethodResult(n) for n in ("ours", "most_frequent", "nearest_neighbours")}
    start_scoring = int(len(history.attempts) * burn_in)

    def most_frequent(issue_type: str) -> tuple[str, float] | None:
        counts = type_counts.get(issue_type)
        if not counts:
            return None
        cand, n = counts.most_common(1)[0]
        return cand, type_success[issue_type][cand] / n

    def nearest(q: np.ndarray) -> tuple[str, float] | None:
        rows, _ = memory.search(q, NN_K)
        if rows.size == 0:
            return None
        wins: Counter[str] = Counter()
        tries: Counter[str] = Counter()
        for r in rows:
            c = memory.candidates[memory.candidate_ids[r]]
            tries[c] += 1
            wins[c] += int(memory.success[r])
        cand = max(tries, key=lambda c: (wins[c], tries[c], c))
        return cand, wins[cand] / tries[cand]

    for i, att in enumerate(history.attempts):
        q = vectors[i]
        now = to_epoch(att.timestamp)
        logged = att.agent_strategy
        u = rng.random()
        scoring = i >= start_scoring

        rec = recommend(q, att.issue_type, memory, state, now=now)
        answers: dict[str, tuple[str, float] | None] = {
            "ours": (rec.agent_strategy, rec.confidence) if rec else None,
            "most_frequent": most_frequent(att.issue_type),
            "nearest_neighbours": nearest(q),
        }
        if scoring:
            best = history.best(att.kind, att.timestamp)
            for name, ans in answers.items():
                res = results[name]
                res.scored += 1
                if ans is None:
                    res.best_hit.append(0.0)
                    continue
                cand, conf = ans
                p = history.success_probability(att.kind, cand, att.timestamp)
                ok = float(u < p)
                res.answered += 1
                res.best_hit.append(float(cand == best))
                res.success.append(ok)
                res.exp_success.append(p)
                res.confidence.append(min(max(conf, 0.0), 1.0))

        # --- the logged outcome arrives: every method learns from it
        if rec is not None:
            fb = state.feedback.setdefault(rec.agent_strategy, FeedbackStats())
            fb.shown += 1
            if rec.agent_strategy == logged:
                fb.followed += 1
                fb.succeeded += int(att.success)
                calib_scores.append(rec.raw_probability)
                calib_outcomes.append(att.success)
            expected = next(
                (c.probability for c in rec.alternatives if c.agent_strategy == logged), 0.5
            )
            apply_pattern_outcome(
                state.pattern_weights,
                PatternOutcome(
                    pattern_key(att.issue_type, att.agent, att.strategy), att.success, expected
                ),
            )
        record = AttemptRecord(
            issue_type=att.issue_type,
            message=att.message,
            file_path=att.file_path,
            stage=att.stage,
            agent=att.agent,
            strategy=att.strategy,
            success=att.success,
            timestamp=now,
        )
        memory.add(record, q)
        type_counts[att.issue_type][logged] += 1
        type_success[att.issue_type][logged] += int(att.success)
        if calib_scores and (i + 1) % calibrate_every == 0:
            state.calibrator = IsotonicCalibrator.fit(calib_scores, calib_outcomes)

    return {name: res.summary() for name, res in results.items()}


def format_table(summary: dict[str, dict[str, float]]) -> str:
    cols = ["best_hit", "success", "exp_success", "ece", "coverage"]
    lines = [f"{'method':<20}" + "".join(f"{c:>13}" for c in cols)]
    for name, row in summary.items():
        lines.append(f"{name:<20}" + "".join(f"{row[c]:>13.3f}" for c in cols))
    ours = summary["ours"]
    for base in ("most_frequent", "nearest_neighbours"):
        b = summary[base]
        lines.append(
            f"ours vs {base}: best_hit x{ours['best_hit'] / max(b['best_hit'], 1e-9):.2f}, "
            f"success x{ours['success'] / max(b['success'], 1e-9):.2f}, "
            f"ece {ours['ece']:.3f} vs {b['ece']:.3f}"
        )
    return "\n".join(lines)


def main(
    argv: list[str] | None = None, log: Callable[[str], None] = print
) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=6000, help="attempts in the generated history")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backend", choices=["onnx", "torch"], default="onnx")
    parser.add_argument("--half-life-days", type=float, default=RecommenderConfig.half_life_days)
    parser.add_argument("--calibrate-every", type=int, default=200)
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 unless ours beats both baselines on best_hit and on ECE",
    )
    args = parser.parse_args(argv)
    if args.n < 50:
        parser.error(f"--n {args.n}: need at least 50 attempts for a meaningful replay")

    t0 = time.perf_counter()
    history = generate_history(n=args.n, seed=args.seed)
    vectors = embed_history(history, IssueEmbedder(backend=args.backend))
    t1 = time.perf_counter()
    summary = replay(
        history,
        vectors,
        RecommenderConfig(half_life_days=args.half_life_days),
        calibrate_every=args.calibrate_every,
        seed=args.seed,
    )
    t2 = time.perf_counter()
    log(
        f"replay of {args.n} attempts (seed {args.seed}, {len(history.kinds)} kinds, drift at "
        f"{history.drift_time:%Y-%m-%d}); embedding {t1 - t0:.1f}s, replay {t2 - t1:.1f}s"
    )
    log(format_table(summary))
    if args.strict:
        losses = beaten_by(summary)
        if losses:
            raise SystemExit("replay: ours does not beat " + "; ".join(losses))
    return summary


def beaten_by(summary: dict[str, dict[str, float]]) -> list[str]:
    """The baselines (and metric) where ours is not strictly better; empty when it wins."""
    ours = summary["ours"]
    losses = []
    for base in ("most_frequent", "nearest_neighbours"):
        if ours["best_hit"] <= summary[base]["best_hit"]:
            losses.append(
                f"{base} on best_hit ({ours['best_hit']:.3f} vs {summary[base]['best_hit']:.3f})"
            )
        if ours["ece"] >= summary[base]["ece"]:
            losses.append(f"{base} on ECE ({ours['ece']:.3f} vs {summary[base]['ece']:.3f})")
    return losses


if __name__ == "__main__":
    main()
