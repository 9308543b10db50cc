"""Strategy recommender and the math that lets it learn from outcomes.

Pure NumPy and plain records: no SQLite, no Dagster, so every rule here is
testable in isolation and the same code runs in assets, the MCP server and the
offline replay.

How a recommendation is made (``recommend``):

1. Find past attempts whose issue vectors have cosine similarity >= 0.3 with
   the new issue (top ``top_k`` by similarity). Below 0.3 MiniLM vectors of
   issues share little more than the language, so they are not evidence.
2. Each similar attempt votes for its ``agent:strategy`` with weight
   ``similarity ** similarity_power * 0.5 ** (age / half_life)``: closer issues
   and recent outcomes count more (half-life 45 days by default, because agents
   and linters change within weeks to months; after 90 days an outcome weighs
   1/4; on the replay 30 and 60 days did worse than 45).
3. A candidate's weighted successes and failures become a smoothed success
   probability with a Beta prior centred on the candidate's (recency-weighted)
   success rate for the issue type, itself shrunk towards the type's base rate.
   Failures count as much as successes, so one lucky success scores about the
   prior, never 100%.
4. Candidates are ranked by that probability minus ``uncertainty_penalty``
   posterior standard deviations (a proven record beats an unproven one with a
   similar mean; this alone raised the replay hit rate by about 2 points),
   multiplied by a follow factor (how often people
   followed this candidate when it was shown, Beta(1, 1)-smoothed, with a
   bounded influence) and by the learned pattern weight of
   ``issue_type|agent:strategy``; the best score wins.
5. Confidence is the winner's smoothed probability passed through a calibrator
   fitted (isotonic regression) on replayed or logged recommendations that were
   followed, so that among recommendations with confidence p about p succeed.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

SECONDS_PER_DAY = 86_400.0


def to_epoch(ts: datetime | float | int | str) -> float:
    """Seconds since the epoch; naive datetimes are taken as UTC (as the store writes them)."""
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return ts.timestamp()
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        return float(ts)
    if isinstance(ts, str):
        try:
            return to_epoch(datetime.fromisoformat(ts.replace("Z", "+00:00")))
        except ValueError as exc:
            raise ValueError(f"timestamp {ts!r}: not an ISO 8601 date-time") from exc
    raise TypeError(f"timestamp {ts!r}: expected datetime, epoch seconds or ISO string")


def candidate_key(agent: str, strategy: str) -> str:
    return f"{agent}:{strategy}"


def pattern_key(issue_type: str, agent: str, strategy: str) -> str:
    """The unit that pattern weights are learned for: one strategy on one issue type."""
    return f"{issue_type}|{agent}:{strategy}"


@dataclass(frozen=True)
class AttemptRecord:
    """A historical fix attempt, as the recommender needs it."""

    issue_type: str
    message: str
    file_path: str
    stage: str
    agent: str
    strategy: str
    success: bool
    timestamp: float
    attempt_id: str | None = None

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> AttemptRecord:
        """Build from a store row or a JSON object; names the field that is missing."""
        missing = [
            k
            for k in ("issue_type", "agent", "strategy", "success", "timestamp")
            if row.get(k) is None
        ]
        if missing:
            raise ValueError(
                f"attempt {row.get('id', row)!r}: missing field(s) {', '.join(missing)}"
            )
        return cls(
            issue_type=str(row["issue_type"]),
            message=str(row.get("message") or ""),
            file_path=str(row.get("file_path") or ""),
            stage=str(row.get("stage") or ""),
            agent=str(row["agent"]),
            strategy=str(row["strategy"]),
            success=bool(row["success"]),
            timestamp=to_epoch(row["timestamp"]),
            attempt_id=None if row.get("id") is None else str(row.get("id")),
        )


@dataclass
class FeedbackStats:
    """What happened when an ``agent:strategy`` recommendation was shown."""

    shown: int = 0
    followed: int = 0
    succeeded: int = 0  # succeeded when followed

    def __post_init__(self) -> None:
        if not 0 <= self.followed <= self.shown or not 0 <= self.succeeded <= self.followed:
            raise ValueError(
                f"feedback counts must satisfy 0 <= succeeded ({self.succeeded}) <= followed "
                f"({self.followed}) <= shown ({self.shown})"
            )

    @property
    def follow_rate(self) -> float:
        """Beta(1, 1)-smoothed: a candidate never shown sits at 0.5, not 0 or 1."""
        return (self.followed + 1.0) / (self.shown + 2.0)

    @property
    def success_when_followed(self) -> float:
        return (self.succeeded + 1.0) / (self.followed + 2.0)


@dataclass(frozen=True)
class RecommenderConfig:
    """Tunable constants; defaults are the ones the replay evaluation reports."""

    min_similarity: float = 0.3
    top_k: int = 64
    half_life_days: float = 45.0
    similarity_power: float = 2.0
    prior_strength: float = 2.0  # pseudo-attempts of the issue-type prior in the local estimate
    type_prior_strength: float = 4.0  # pseudo-attempts of the base rate in the type prior
    follow_influence: float = 0.1  # follow factor ranges over [1 - x, 1 + x]
    pattern_weight_power: float = 1.0
    uncertainty_penalty: float = 1.0  # rank by mean - penalty * posterior std

    def __post_init__(self) -> None:
        if not -1.0 <= self.min_similarity <= 1.0:
            raise ValueError(f"min_similarity={self.min_similarity}: must be within [-1, 1]")
        if self.top_k < 1:
            raise ValueError(f"top_k={self.top_k}: must be >= 1")
        if self.half_life_days <= 0:
            raise ValueError(f"half_life_days={self.half_life_days}: must be > 0")
        if self.prior_strength <= 0 or self.type_prior_strength <= 0:
            raise ValueError("prior_strength and type_prior_strength must be > 0")
        if not 0.0 <= self.follow_influence < 1.0:
            raise ValueError(f"follow_influence={self.follow_influence}: must be within [0, 1)")


def recency_weight(age_seconds: np.ndarray | float, half_life_days: float) -> np.ndarray:
    """``0.5 ** (age / half_life)``; future timestamps (clock skew) count as age 0."""
    age = np.maximum(np.asarray(age_seconds, dtype=np.float64), 0.0)
    return np.power(0.5, age / (half_life_days * SECONDS_PER_DAY))


def smoothed_success_rate(
    successes: float, attempts: float, prior_mean: float = 0.5, prior_strength: float = 2.0
) -> float:
    """Posterior mean under a Beta prior with the given mean and pseudo-count.

    One success in one attempt with the default prior gives 2/3, not 1.0; ten
    failures pull the rate down as surely as ten successes push it up.
    """
    if attempts < 0 or successes < 0 or successes > attempts + 1e-9:
        raise ValueError(
            f"successes={successes}, attempts={attempts}: need 0 <= successes <= attempts"
        )
    if not 0.0 <= prior_mean <= 1.0:
        raise ValueError(f"prior_mean={prior_mean}: must be within [0, 1]")
    return (successes + prior_strength * prior_mean) / (attempts + prior_strength)


class _DecayedCounter:
    """Recency-weighted success/attempt sums, updated in O(1) per outcome.

    Values are stored as of ``t_ref`` and decayed on read, so the sums equal
    ``sum(w_i * y_i)`` with ``w_i = 0.5 ** ((now - t_i) / half_life)`` exactly.
    """

    __slots__ = ("successes", "attempts", "t_ref")

    def __init__(self) -> None:
        self.successes = 0.0
        self.attempts = 0.0
        self.t_ref = -math.inf

    def add(self, success: bool, t: float, half_life_s: float) -> None:
        if self.t_ref == -math.inf:
            self.t_ref = t
        if t >= self.t_ref:
            f = 0.5 ** ((t - self.t_ref) / half_life_s)
            self.successes *= f
            self.attempts *= f
            self.t_ref = t
            w = 1.0
        else:
            w = 0.5 ** ((self.t_ref - t) / half_life_s)
        self.successes += w * float(success)
        self.attempts += w

    def read(self, now: float, half_life_s: float) -> tuple[float, float]:
        if self.t_ref == -math.inf:
            return 0.0, 0.0
        f = 0.5 ** (max(now - self.t_ref, 0.0) / half_life_s)
        return self.successes * f, self.attempts * f


class NeighbourSearch(Protocol):
    """Anything that returns top-k row ids and cosine similarities (``core.vectors``)."""

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


class AttemptMemory:
    """Past attempts in columnar form: a normalized vector matrix plus outcome columns.

    Appends are amortised O(1) (the matrix grows by doubling). For large histories
    pass ``index`` (a ``core.vectors.VectorIndex`` over the same rows) to ``recommend``; the
    default is an exact search over the matrix.
    """

    def __init__(self, dim: int = 384, half_life_days: float = 45.0) -> None:
        if dim < 1:
            raise ValueError(f"dim={dim}: must be >= 1")
        self.dim = dim
        self.half_life_s = half_life_days * SECONDS_PER_DAY
        self._vectors = np.zeros((1024, dim), dtype=np.float32)
        self._n = 0
        self._cand = np.zeros(1024, dtype=np.int32)
        self._success = np.zeros(1024, dtype=bool)
        self._ts = np.zeros(1024, dtype=np.float64)
        self.records: list[AttemptRecord] = []
        self.candidates: list[str] = []
        self._cand_ids: dict[str, int] = {}
        self._type_cand: dict[tuple[str, int], _DecayedCounter] = defaultdict(_DecayedCounter)
        self._type_all: dict[str, _DecayedCounter] = defaultdict(_DecayedCounter)
        self._type_cands: dict[str, set[int]] = defaultdict(set)

    def __len__(self) -> int:
        return self._n

    @classmethod
    def from_arrays(
        cls,
        vectors: np.ndarray,
        issue_types: Sequence[str] | np.ndarray,
        agent_strategies: Sequence[str] | np.ndarray,
        success: np.ndarray,
        timestamps: np.ndarray,
        half_life_days: float = 45.0,
    ) -> AttemptMemory:
        """Adopt columns loaded in bulk (e.g. from the warehouse) without a per-row loop.

        The vector matrix is used as given (no copy when it is float32 and
        contiguous); rows carry no messages, so evidence shows outcomes only.
        """
        types = np.asarray(issue_types, dtype=object)
        cands = np.asarray(agent_strategies, dtype=object)
        n = np.shape(vectors)[0]
        for name, col in (("issue_types", types), ("agent_strategies", cands)):
            if col.shape != (n,):
                raise ValueError(f"{name}: shape {col.shape}, expected ({n},) to match vectors")
        type_names, type_codes = np.unique(types, return_inverse=True)
        cand_names, cand_codes = np.unique(cands, return_inverse=True)
        return cls.from_codes(
            vectors,
            [str(t) for t in type_names.tolist()],
            type_codes,
            [str(c) for c in cand_names.tolist()],
            cand_codes,
            success,
            timestamps,
            half_life_days,
        )

    @classmethod
    def from_codes(
        cls,
        vectors: np.ndarray,
        type_names: Sequence[str],
        type_codes: np.ndarray,
        cand_names: Sequence[str],
        cand_codes: np.ndarray,
        success: np.ndarray,
        timestamps: np.ndarray,
        half_life_days: float = 45.0,
    ) -> AttemptMemory:
        """``from_arrays`` for columns stored as codes into name lists (the published form).

        Skips sorting a million Python strings: opening a published 1M-attempt
        history spent seconds in ``np.unique`` over object arrays.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n = vectors.shape[0]
        tcodes = np.asarray(type_codes, dtype=np.int64).reshape(-1)
        ccodes = np.asarray(cand_codes, dtype=np.int64).reshape(-1)
        ok = np.asarray(success, dtype=bool)
        ts = np.asarray(timestamps, dtype=np.float64)
        for name, col in (
            ("issue_types", tcodes),
            ("agent_strategies", ccodes),
            ("success", ok),
            ("timestamps", ts),
        ):
            if col.shape != (n,):
                raise ValueError(f"{name}: shape {col.shape}, expected ({n},) to match vectors")
        mem = cls(dim=vectors.shape[1], half_life_days=half_life_days)
        # candidate ids follow sorted names, as np.unique gave them before
        cand_sorted = sorted(range(len(cand_names)), key=lambda i: cand_names[i])
        remap = np.zeros(max(len(cand_names), 1), dtype=np.int32)
        for new, old in enumerate(cand_sorted):
            mem._candidate_id(str(cand_names[old]))
            remap[old] = new
        cand_codes = remap[ccodes] if n else np.zeros(0, dtype=np.int32)
        mem._vectors = vectors
        mem._cand = cand_codes.astype(np.int32)
        mem._success = ok
        mem._ts = ts
        mem._n = n
        n_cand = len(cand_names)
        if n:
            t_ref = float(ts.max())
            w = np.power(0.5, (t_ref - ts) / mem.half_life_s)
            key = tcodes * n_cand + cand_codes
            n_keys = len(type_names) * n_cand
            s_sum = np.bincount(key, weights=w * ok, minlength=n_keys)
            a_sum = np.bincount(key, weights=w, minlength=n_keys)
            for k in np.flatnonzero(a_sum > 0):
                t_name, cid = str(type_names[int(k) // n_cand]), int(k % n_cand)
                c = mem._type_cand[(t_name, cid)]
                c.successes, c.attempts, c.t_ref = float(s_sum[k]), float(a_sum[k]), t_ref
                tot = mem._type_all[t_name]
                if tot.t_ref == -math.inf:
                    tot.t_ref = t_ref
                tot.successes += float(s_sum[k])
                tot.attempts += float(a_sum[k])
                mem._type_cands[t_name].add(cid)
        return mem

    @property
    def vectors(self) -> np.ndarray:
        return self._vectors[: self._n]

    @property
    def success(self) -> np.ndarray:
        return self._success[: self._n]

    @property
    def timestamps(self) -> np.ndarray:
        return self._ts[: self._n]

    @property
    def candidate_ids(self) -> np.ndarray:
        return self._cand[: self._n]

    def _candidate_id(self, key: str) -> int:
        cid = self._cand_ids.get(key)
        if cid is None:
            cid = len(self.candidates)
            self._cand_ids[key] = cid
            self.candidates.append(key)
        return cid

    def _grow(self, extra: int) -> None:
        need = self._n + extra
        if need <= len(self._ts):
            return
        size = max(need, 2 * len(self._ts))
        self._vectors = np.resize(self._vectors, (size, self.dim))
        self._cand = np.resize(self._cand, size)
        self._success = np.resize(self._success, size)
        self._ts = np.resize(self._ts, size)

    def add(self, record: AttemptRecord, vector: np.ndarray) -> int:
        """Append one attempt; returns its row id."""
        return int(self.add_many([record], np.asarray(vector, dtype=np.float32)[None, :])[0])

    def add_many(self, records: Sequence[AttemptRecord], vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(records), self.dim):
            raise ValueError(
                f"vectors: shape {vectors.shape}, expected ({len(records)}, {self.dim})"
            )
        norms = np.linalg.norm(vectors, axis=1)
        if len(records) and not np.all(np.abs(norms - 1.0) < 1e-3):
            bad = int(np.argmax(np.abs(norms - 1.0)))
            raise ValueError(f"vectors[{bad}]: norm {norms[bad]:.4f}, expected unit-norm vectors")
        self._grow(len(records))
        start = self._n
        for j, rec in enumerate(records):
            i = start + j
            cid = self._candidate_id(candidate_key(rec.agent, rec.strategy))
            self._cand[i] = cid
            self._success[i] = rec.success
            self._ts[i] = rec.timestamp
            self._type_cand[(rec.issue_type, cid)].add(rec.success, rec.timestamp, self.half_life_s)
            self._type_all[rec.issue_type].add(rec.success, rec.timestamp, self.half_life_s)
            self._type_cands[rec.issue_type].add(cid)
        self._vectors[start : start + len(records)] = vectors
        self.records.extend(records)
        self._n += len(records)
        return np.arange(start, self._n)

    def type_stats(self, issue_type: str, now: float) -> tuple[float, float]:
        """Recency-weighted (successes, attempts) over all strategies for one issue type."""
        counter = self._type_all.get(issue_type)
        return counter.read(now, self.half_life_s) if counter else (0.0, 0.0)

    def type_candidate_stats(self, issue_type: str, cid: int, now: float) -> tuple[float, float]:
        counter = self._type_cand.get((issue_type, cid))
        return counter.read(now, self.half_life_s) if counter else (0.0, 0.0)

    def type_candidates(self, issue_type: str) -> set[int]:
        return self._type_cands.get(issue_type, set())

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact cosine top-k over the stored rows."""
        if self._n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        sims = self.vectors @ np.asarray(query, dtype=np.float32)
        k = min(k, self._n)
        idx = np.argpartition(-sims, k - 1)[:k] if k < self._n else np.arange(self._n)
        order = np.argsort(-sims[idx], kind="stable")
        return idx[order].astype(np.int64), sims[idx[order]]


@dataclass(frozen=True)
class Evidence:
    """One similar past attempt behind a recommendation."""

    row: int
    similarity: float
    weight: float
    agent: str
    strategy: str
    success: bool
    timestamp: float
    issue_type: str
    message: str
    file_path: str
    attempt_id: str | None = None


@dataclass(frozen=True)
class CandidateScore:
    agent_strategy: str
    score: float
    probability: float  # smoothed success probability before calibration
    support: float  # similarity- and recency-weighted attempts behind it


@dataclass(frozen=True)
class Recommendation:
    agent: str
    strategy: str
    confidence: float
    raw_probability: float
    evidence: list[Evidence]
    alternatives: list[CandidateScore]  # every candidate considered, best first

    @property
    def agent_strategy(self) -> str:
        return candidate_key(self.agent, self.strategy)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"agent_strategy": self.agent_strategy}


class IsotonicCalibrator:
    """Monotone map from raw probability to observed success rate (pool adjacent violators).

    Each pooled block is shrunk towards the overall success rate with
    ``prior_strength`` pseudo-observations, so a block of three successes does not
    promise 100%; between block centres the map is linear.
    """

    def __init__(
        self, x: Sequence[float] | np.ndarray = (), y: Sequence[float] | np.ndarray = ()
    ) -> None:
        self.x = np.asarray(x, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        if self.x.shape != self.y.shape or self.x.ndim != 1:
            raise ValueError(f"calibrator: x {self.x.shape} and y {self.y.shape} must be equal 1-D")
        if self.x.size and (np.any(np.diff(self.x) < 0) or np.any(np.diff(self.y) < -1e-12)):
            raise ValueError("calibrator: x and y must be non-decreasing")

    @property
    def fitted(self) -> bool:
        return self.x.size > 0

    @classmethod
    def fit(
        cls,
        scores: Sequence[float] | np.ndarray,
        outcomes: Sequence[bool] | np.ndarray,
        prior_strength: float = 2.0,
    ) -> IsotonicCalibrator:
        s = np.asarray(scores, dtype=np.float64)
        o = np.asarray(outcomes, dtype=np.float64)
        if s.shape != o.shape or s.ndim != 1:
            raise ValueError(f"fit: scores {s.shape} and outcomes {o.shape} must be equal 1-D")
        if s.size == 0:
            return cls()
        order = np.argsort(s, kind="stable")
        s, o = s[order], o[order]
        # PAV over blocks: (sum_y, count, sum_x)
        sums: list[float] = []
        counts: list[float] = []
        xs: list[float] = []
        for xi, yi in zip(s, o, strict=True):
            sums.append(yi)
            counts.append(1.0)
            xs.append(xi)
            while len(sums) > 1 and sums[-2] / counts[-2] >= sums[-1] / counts[-1]:
                sy, c, sx = sums.pop(), counts.pop(), xs.pop()
                sums[-1] += sy
                counts[-1] += c
                xs[-1] += sx
        base = float(o.mean())
        ys = [
            (sy + prior_strength * base) / (c + prior_strength)
            for sy, c in zip(sums, counts, strict=True)
        ]
        centres = [sx / c for sx, c in zip(xs, counts, strict=True)]
        # shrinkage can break monotonicity slightly between tiny blocks; restore it
        ys_arr = np.maximum.accumulate(np.asarray(ys))
        return cls(centres, ys_arr)

    def __call__(self, raw: float | np.ndarray) -> np.ndarray | float:
        if not self.fitted:
            return raw
        out = np.interp(raw, self.x, self.y)
        return float(out) if np.ndim(out) == 0 else out

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[float]]) -> IsotonicCalibrator:
        return cls(data.get("x", ()), data.get("y", ()))


@dataclass
class RecommenderState:
    """Everything the recommender learns: pattern weights, feedback, calibration, config.

    Serialised as one JSON document so a training asset can publish it atomically
    and any reader (MCP server, CLI) can load it without Dagster.
    """

    config: RecommenderConfig = field(default_factory=RecommenderConfig)
    pattern_weights: dict[str, float] = field(default_factory=dict)
    feedback: dict[str, FeedbackStats] = field(default_factory=dict)
    calibrator: IsotonicCalibrator = field(default_factory=IsotonicCalibrator)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "config": asdict(self.config),
                "pattern_weights": self.pattern_weights,
                "feedback": {k: asdict(v) for k, v in self.feedback.items()},
                "calibrator": self.calibrator.to_dict(),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> RecommenderState:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"recommender state: not JSON ({exc})") from exc
        if data.get("version") != 1:
            raise ValueError(f"recommender state: unsupported version {data.get('version')!r}")
        return cls(
            config=RecommenderConfig(**data.get("config", {})),
            pattern_weights={str(k): float(v) for k, v in data.get("pattern_weights", {}).items()},
            feedback={k: FeedbackStats(**v) for k, v in data.get("feedback", {}).items()},
            calibrator=IsotonicCalibrator.from_dict(data.get("calibrator", {})),
        )


def recommend(
    issue_vector: np.ndarray,
    issue_type: str,
    memory: AttemptMemory,
    state: RecommenderState | None = None,
    now: datetime | float | None = None,
    index: NeighbourSearch | None = None,
    max_evidence: int = 10,
) -> Recommendation | None:
    """Best ``agent:strategy`` for an issue, with calibrated confidence and evidence.

    Returns None only when the memory holds nothing about similar issues nor
    about this issue type: there is nothing honest to say then.
    """
    state = state or RecommenderState()
    cfg = state.config
    q = np.asarray(issue_vector, dtype=np.float32).reshape(-1)
    if q.shape[0] != memory.dim:
        raise ValueError(f"issue_vector: {q.shape[0]} dimensions, memory holds {memory.dim}")
    now_s = to_epoch(now) if now is not None else datetime.now(UTC).timestamp()
    rows, sims = (index or memory).search(q, cfg.top_k)
    keep = sims >= cfg.min_similarity
    rows, sims = rows[keep], sims[keep].astype(np.float64)
    w = np.power(np.clip(sims, 0.0, 1.0), cfg.similarity_power)
    w = w * recency_weight(now_s - memory.timestamps[rows], cfg.half_life_days)
    cands = memory.candidate_ids[rows]
    succ = memory.success[rows].astype(np.float64)
    n_cand = len(memory.candidates)
    local_s = np.bincount(cands, weights=w * succ, minlength=n_cand)
    local_n = np.bincount(cands, weights=w, minlength=n_cand)

    pool = set(np.flatnonzero(local_n > 0).tolist()) | memory.type_candidates(issue_type)
    if not pool:
        return None
    type_s, type_n = memory.type_stats(issue_type, now_s)
    base = smoothed_success_rate(type_s, type_n, 0.5, 2.0)

    scored: list[CandidateScore] = []
    for cid in pool:
        ts, tn = memory.type_candidate_stats(issue_type, cid, now_s)
        prior = smoothed_success_rate(ts, tn, base, cfg.type_prior_strength)
        p = smoothed_success_rate(
            float(local_s[cid]), float(local_n[cid]), prior, cfg.prior_strength
        )
        key = memory.candidates[cid]
        fb = state.feedback.get(key)
        follow = fb.follow_rate if fb else 0.5
        follow_factor = 1.0 + cfg.follow_influence * (2.0 * follow - 1.0)
        agent, strategy = key.split(":", 1)
        pw = state.pattern_weights.get(pattern_key(issue_type, agent, strategy), 1.0)
        # Beta posterior std: an unproven candidate (one lucky success) ranks below a
        # long record with the same or slightly lower mean
        pseudo = float(local_n[cid]) + cfg.prior_strength
        std = math.sqrt(p * (1.0 - p) / (pseudo + 1.0))
        ranked = max(p - cfg.uncertainty_penalty * std, 0.0)
        score = ranked * follow_factor * pw**cfg.pattern_weight_power
        scored.append(CandidateScore(key, float(score), float(p), float(local_n[cid])))
    scored.sort(key=lambda c: (-c.score, -c.support, c.agent_strategy))
    best = scored[0]
    agent, strategy = best.agent_strategy.split(":", 1)
    confidence = float(np.clip(state.calibrator(best.probability), 0.0, 1.0))

    order = np.argsort(-w, kind="stable")[:max_evidence]
    evidence = []
    for j in order:
        r = int(rows[j])
        rec = memory.records[r] if r < len(memory.records) else None
        evidence.append(
            Evidence(
                row=r,
                similarity=float(sims[j]),
                weight=float(w[j]),
                agent=rec.agent if rec else memory.candidates[cands[j]].split(":", 1)[0],
                strategy=rec.strategy if rec else memory.candidates[cands[j]].split(":", 1)[1],
                success=bool(memory.success[r]),
                timestamp=float(memory.timestamps[r]),
                issue_type=rec.issue_type if rec else "",
                message=rec.message if rec else "",
                file_path=rec.file_path if rec else "",
                attempt_id=rec.attempt_id if rec else None,
            )
        )
    return Recommendation(
        agent=agent,
        strategy=strategy,
        confidence=confidence,
        raw_probability=best.probability,
        evidence=evidence,
        alternatives=scored,
    )


@dataclass(frozen=True)
class PatternOutcome:
    """An observed outcome for a pattern, with the probability we expected beforehand."""

    pattern: str
    success: bool
    expected: float = 0.5


def update_pattern_weights(
    weights: Mapping[str, float],
    outcomes: Iterable[PatternOutcome],
    learning_rate: float = 0.02,
    forgetting: float = 0.02,
    bounds: tuple[float, float] = (0.5, 2.0),
) -> dict[str, float]:
    """Bounded multiplicative update, one outcome at a time.

    ``w <- w ** (1 - forgetting) * exp(learning_rate * (success - expected))``,
    clipped to ``bounds``. A success strengthens the pattern and a failure
    weakens it, scaled by the surprise (outcome minus what was expected), so a
    pattern that does exactly as well as predicted stays put. Without the
    forgetting term the weight is a random walk of outcome noise that ends at a
    bound; with it the log-weight tracks a recent average of the surprise
    (roughly the last ``1 / forgetting`` outcomes of that pattern).
    """
    out = dict(weights)
    for o in outcomes:
        apply_pattern_outcome(out, o, learning_rate, forgetting, bounds)
    return out


def apply_pattern_outcome(
    weights: dict[str, float],
    outcome: PatternOutcome,
    learning_rate: float = 0.02,
    forgetting: float = 0.02,
    bounds: tuple[float, float] = (0.5, 2.0),
) -> None:
    """The rule of ``update_pattern_weights`` for one outcome, applied to ``weights`` in
    place: replay loops call it per attempt without copying every weight each step."""
    lo, hi = bounds
    if not 0 < lo <= 1.0 <= hi:
        raise ValueError(f"bounds={bounds}: need 0 < low <= 1 <= high")
    if learning_rate <= 0:
        raise ValueError(f"learning_rate={learning_rate}: must be > 0")
    if not 0.0 <= forgetting < 1.0:
        raise ValueError(f"forgetting={forgetting}: must be within [0, 1)")
    o = outcome
    if not 0.0 <= o.expected <= 1.0:
        raise ValueError(f"outcome for {o.pattern!r}: expected={o.expected} outside [0, 1]")
    w = weights.get(o.pattern, 1.0)
    if w <= 0:
        raise ValueError(f"weight for {o.pattern!r}: {w} is not positive")
    log_w = (1.0 - forgetting) * math.log(w) + learning_rate * (float(o.success) - o.expected)
    weights[o.pattern] = min(max(math.exp(log_w), lo), hi)


def expected_calibration_error(
    confidence: Sequence[float] | np.ndarray,
    outcome: Sequence[float] | np.ndarray,
    n_bins: int = 10,
) -> float:
    """Weighted mean gap between confidence and success rate over equal-width bins."""
    c = np.asarray(confidence, dtype=np.float64)
    y = np.asarray(outcome, dtype=np.float64)
    if c.shape != y.shape or c.ndim != 1:
        raise ValueError(f"confidence {c.shape} and outcome {y.shape} must be equal 1-D")
    if c.size == 0:
        raise ValueError("expected_calibration_error: no predictions")
    if np.any((c < 0) | (c > 1)):
        raise ValueError("confidence values must lie within [0, 1]")
    bins = np.minimum((c * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.mean() * abs(c[m].mean() - y[m].mean())
    return float(total)
