"""Click memory: boosts for commits clicked on earlier, similar queries.

Fusion weights change how every query is ranked; what people click mostly says
something narrower: *for this kind of question, this commit is the answer*. The
click memory keeps, for every logged search with a click, the query's vector and
the commits it clicked and skipped (unclicked results shown above the lowest
click). At query time it looks up the past queries whose cosine to the new query
is at least ``threshold``; for each commit they clicked or skipped it adds up,
weighted by ``similarity * recency``, clicks ``c`` and skips ``s``, and the boost is

    strength * ((c + a) / (c + s + a + b) - a / (a + b))

(a Beta(a, b) prior against skips: one click lifts, more clicks lift more, a
skip pulls down, and a commit as often skipped as clicked comes out near 0).
Recency halves an event's weight every ``half_life_days`` before the newest
event in the memory (so the boosts do not depend on the wall clock).

A query with no past query above the threshold gets no boost at all: its ranking
is exactly the unlearned one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

DEFAULT_THRESHOLD = 0.8
DEFAULT_STRENGTH = 1.0
DEFAULT_HALF_LIFE_DAYS = 180.0
PRIOR_CLICKS = 1.0  # a
PRIOR_SKIPS = 1.0  # b


@dataclass(frozen=True)
class ClickBoost:
    """The boost of one commit for one query, and how many similar past queries clicked it."""

    boost: float
    clicks: float  # similarity- and recency-weighted
    skips: float
    queries: int  # similar past queries that clicked it


@dataclass
class ClickModel:
    """Past clicked queries (unit vectors) and their clicked / skipped commits."""

    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    times: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))  # epoch s
    queries: list[str] = field(default_factory=list)
    entry_query: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    entry_hash: list[str] = field(default_factory=list)
    entry_clicked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    threshold: float = DEFAULT_THRESHOLD
    strength: float = DEFAULT_STRENGTH
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS
    prior_clicks: float = PRIOR_CLICKS
    prior_skips: float = PRIOR_SKIPS
    trained_at: str | None = None

    @property
    def size(self) -> int:
        """Number of remembered queries."""
        return len(self.queries)

    def similar(self, query_vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Past queries at or above the threshold, and their similarity."""
        if self.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        sims = self.vectors @ np.asarray(query_vec, dtype=np.float32)
        ids = np.flatnonzero(sims >= self.threshold)
        return ids, sims[ids].astype(np.float64)

    def boosts(self, query_vec: np.ndarray) -> dict[str, ClickBoost]:
        """Boost by commit hash for this query; empty when no past query is similar enough."""
        ids, sims = self.similar(query_vec)
        if len(ids) == 0:
            return {}
        newest = float(self.times.max())
        age_days = (newest - self.times[ids]) / 86_400.0
        weight = sims * np.power(0.5, age_days / self.half_life_days)
        w_of = dict(zip(ids.tolist(), weight.tolist(), strict=True))
        clicks: dict[str, float] = {}
        skips: dict[str, float] = {}
        who: dict[str, set[int]] = {}
        for e in np.flatnonzero(np.isin(self.entry_query, ids)):
            q = int(self.entry_query[e])
            h = self.entry_hash[e]
            if self.entry_clicked[e]:
                clicks[h] = clicks.get(h, 0.0) + w_of[q]
                who.setdefault(h, set()).add(q)
            else:
                skips[h] = skips.get(h, 0.0) + w_of[q]
        a, b = self.prior_clicks, self.prior_skips
        base = a / (a + b)
        out: dict[str, ClickBoost] = {}
        for h in sorted(set(clicks) | set(skips)):
            c, s = clicks.get(h, 0.0), skips.get(h, 0.0)
            value = self.strength * ((c + a) / (c + s + a + b) - base)
            out[h] = ClickBoost(float(value), c, s, len(who.get(h, ())))
        return out

    # -- serialization ----------------------------------------------------------------
    def to_json(self) -> str:
        vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        return json.dumps(
            {
                "format": 1,
                "dimension": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
                "vectors_b64": base64.b64encode(vectors.tobytes()).decode("ascii"),
                "times": self.times.tolist(),
                "queries": self.queries,
                "entries": [
                    [int(q), h, bool(c)]
                    for q, h, c in zip(
                        self.entry_query, self.entry_hash, self.entry_clicked, strict=True
                    )
                ],
                "threshold": self.threshold,
                "strength": self.strength,
                "half_life_days": self.half_life_days,
                "prior_clicks": self.prior_clicks,
                "prior_skips": self.prior_skips,
                "trained_at": self.trained_at,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> ClickModel:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != 1:
            raise ValueError("click model: expected an object with format 1")
        dim = int(data["dimension"])
        raw = np.frombuffer(base64.b64decode(data["vectors_b64"]), dtype=np.float32)
        n = len(data["queries"])
        entries = data["entries"]
        return cls(
            vectors=raw.reshape(n, dim).copy() if n else np.zeros((0, dim), dtype=np.float32),
            times=np.asarray(data["times"], dtype=np.float64),
            queries=[str(q) for q in data["queries"]],
            entry_query=np.asarray([e[0] for e in entries], dtype=np.int64),
            entry_hash=[str(e[1]) for e in entries],
            entry_clicked=np.asarray([e[2] for e in entries], dtype=bool),
            threshold=float(data["threshold"]),
            strength=float(data["strength"]),
            half_life_days=float(data["half_life_days"]),
            prior_clicks=float(data["prior_clicks"]),
            prior_skips=float(data["prior_skips"]),
            trained_at=data.get("trained_at"),
        )


@dataclass(frozen=True)
class ClickRecord:
    """One search with at least one click, as the click memory stores it."""

    query: str
    timestamp: datetime
    clicked: Sequence[str]  # full hashes
    skipped: Sequence[str]  # unclicked, shown above the lowest click


def records_from_logged(logged: Sequence[Any]) -> list[ClickRecord]:
    """``LoggedSearch`` rows (``ranker.join_clicks``) to click records (skip-above rule)."""
    out: list[ClickRecord] = []
    for s in logged:
        if not s.clicked or not s.shown:
            continue
        lowest = max(i for i, h in enumerate(s.shown) if h in s.clicked)
        skipped = [h for h in s.shown[:lowest] if h not in s.clicked]
        ts = s.timestamp or datetime.fromtimestamp(0, UTC)
        out.append(ClickRecord(s.query, ts, sorted(s.clicked), skipped))
    return out


def learn_click_model(
    records: Sequence[ClickRecord],
    embed: Callable[[list[str]], np.ndarray],
    threshold: float = DEFAULT_THRESHOLD,
    strength: float = DEFAULT_STRENGTH,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
) -> ClickModel:
    """The click memory of ``records``; ``embed`` maps queries to unit vectors."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold={threshold}: must be in (0, 1]")
    if half_life_days <= 0:
        raise ValueError(f"half_life_days={half_life_days}: must be > 0")
    records = sorted(records, key=lambda r: (r.timestamp, r.query))
    model = ClickModel(
        threshold=threshold,
        strength=strength,
        half_life_days=half_life_days,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    if not records:
        return model
    vectors = np.asarray(embed([" ".join(r.query.split()) for r in records]), dtype=np.float32)
    eq: list[int] = []
    eh: list[str] = []
    ec: list[bool] = []
    for i, r in enumerate(records):
        for h in r.clicked:
            eq.append(i)
            eh.append(h)
            ec.append(True)
        for h in r.skipped:
            eq.append(i)
            eh.append(h)
            ec.append(False)
    model.vectors = vectors
    model.times = np.asarray([_utc(r.timestamp).timestamp() for r in records], dtype=np.float64)
    model.queries = [r.query for r in records]
    model.entry_query = np.asarray(eq, dtype=np.int64)
    model.entry_hash = eh
    model.entry_clicked = np.asarray(ec, dtype=bool)
    return model


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
