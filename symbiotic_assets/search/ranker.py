"""The hybrid ranker: a linear score over a few features, and how it learns from clicks.

Every candidate (from the semantic top-N, the lexical top-N and exact
identifier matches) gets the features in ``FEATURES``; its score is their dot
product with the weights. The default weights are the unlearned ranker (fused
semantic + BM25 with identifier boosts). ``learn_weights`` fits a pairwise
logistic regression on clicked-versus-skipped feature differences, pulled
towards the current weights by an L2 term, so that a handful of clicks nudges
the ranker instead of replacing it, and with no clicks the weights do not move.
Two features exist only to let the learner treat query patterns apart
(``*_if_identifier`` fire only when the query contains a code identifier, hash
prefix or ``#N``): clicks on identifier queries can then change how those are
ranked without touching plain-language queries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

FEATURES: tuple[str, ...] = (
    "semantic",  # cosine of query and commit vectors
    "semantic_rank",  # 10 / (9 + rank) among the semantic candidates, 0 outside them
    "lexical",  # BM25 / best BM25 of this query
    "lexical_rank",  # 10 / (9 + rank) among the lexical candidates, 0 outside them
    "subject_terms",  # share of the query's terms found in the subject
    "identifier",  # share of the query's code identifiers found in the commit text
    "hash_prefix",  # the commit hash starts with a hex word of the query
    "issue_ref",  # the commit mentions a #N of the query
    "semantic_if_identifier",  # semantic, when the query holds an identifier
    "lexical_if_identifier",  # lexical, when the query holds an identifier
)
FEATURE_INDEX = {name: i for i, name in enumerate(FEATURES)}

# Fitted across repositories (benchmarks/learn_defaults.py) on the training pairs of the
# *older* half of the PRs of psf/requests, pytest, encode/httpx and axios (an equal number
# of pairs from each), never on the PRs they are evaluated on; urfave/cli was kept out
# entirely (docs/search.md, "Quality"). A repository with enough merged PRs replaces them
# with weights learned from its own history (``learn_from_history``), and clicks refine
# whichever is in use. hash_prefix and issue_ref never differ within a training pair, so
# they keep their hand-set values (an exact hash is always first).
DEFAULT_WEIGHTS: dict[str, float] = {
    "semantic": 1.87,
    "semantic_rank": 0.16,
    "lexical": 1.47,
    "lexical_rank": 1.16,
    "subject_terms": 0.85,
    "identifier": 1.01,
    "hash_prefix": 10.0,
    "issue_ref": 2.0,
    "semantic_if_identifier": -0.08,
    "lexical_if_identifier": 0.28,
}


@dataclass
class RankerWeights:
    """Weights by feature name plus where they came from (default or learned, on how much)."""

    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    source: str = "default"
    trained_at: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def vector(self) -> np.ndarray:
        """Weights in ``FEATURES`` order; unknown names are ignored, missing ones default."""
        return np.array(
            [float(self.weights.get(f, DEFAULT_WEIGHTS[f])) for f in FEATURES], dtype=np.float64
        )

    @classmethod
    def from_vector(cls, vec: np.ndarray, **kwargs: Any) -> RankerWeights:
        return cls(weights={f: float(v) for f, v in zip(FEATURES, vec, strict=True)}, **kwargs)

    def to_json(self) -> str:
        return json.dumps(
            {
                "weights": self.weights,
                "source": self.source,
                "trained_at": self.trained_at,
                "stats": self.stats,
            },
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> RankerWeights:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
            raise ValueError("ranker weights: expected an object with a 'weights' mapping")
        return cls(
            weights={str(k): float(v) for k, v in data["weights"].items()},
            source=str(data.get("source", "default")),
            trained_at=data.get("trained_at"),
            stats=dict(data.get("stats") or {}),
        )


def rank_feature(ranks: np.ndarray) -> np.ndarray:
    """10 / (9 + rank) for 1-based ranks (1 -> 1.0, 10 -> 0.53, 100 -> 0.09); 0 for rank 0."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks > 0, 10.0 / (9.0 + ranks), 0.0)


@dataclass(frozen=True)
class ClickedSearch:
    """One logged search as the learner sees it: candidate features and which were clicked."""

    query: str
    features: np.ndarray  # (shown, len(FEATURES)) in the order shown
    clicked: np.ndarray  # bool (shown,)


def preference_pairs(searches: Sequence[ClickedSearch]) -> np.ndarray:
    """Feature differences (clicked - skipped) under the skip-above-and-next-one rule.

    A click at rank r says the user preferred it to every unclicked result shown
    above it (they were seen and passed over) and to the one right below it
    (seen while reading); results further down may never have been looked at.
    """
    diffs: list[np.ndarray] = []
    for s in searches:
        clicked = np.flatnonzero(s.clicked)
        for c in clicked:
            skipped = [i for i in range(len(s.clicked)) if not s.clicked[i] and i <= c + 1]
            for i in skipped:
                diffs.append(s.features[c] - s.features[i])
    if not diffs:
        return np.zeros((0, len(FEATURES)))
    return np.vstack(diffs)


def learn_weights(
    searches: Sequence[ClickedSearch],
    prior: RankerWeights | None = None,
    l2: float = 0.3,
) -> RankerWeights:
    """Pairwise logistic regression regularized toward ``prior`` (default weights).

    Minimizes ``mean(log(1 + exp(-w . d))) + l2 * ||w - w0||^2`` over the
    preference pairs ``d``. With no pairs the prior comes back unchanged.
    """
    from scipy.optimize import minimize

    if l2 <= 0:
        raise ValueError(f"l2={l2}: must be > 0 (it keeps weights near the prior)")
    prior = prior or RankerWeights()
    w0 = prior.vector()
    pairs = preference_pairs(searches)
    n_clicks = int(sum(int(s.clicked.sum()) for s in searches))
    if len(pairs) == 0:
        return RankerWeights(
            weights=dict(prior.weights),
            source=prior.source,
            trained_at=prior.trained_at,
            stats={"searches": len(searches), "clicks": n_clicks, "pairs": 0, "unchanged": True},
        )

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        margin = pairs @ w
        # log(1 + exp(-m)) computed stably
        value = float(np.mean(np.logaddexp(0.0, -margin)) + l2 * np.sum((w - w0) ** 2))
        sig = 0.5 * (1.0 + np.tanh(0.5 * margin))  # = 1 / (1 + exp(-m)), stable
        grad = -(pairs.T @ (1.0 - sig)) / len(pairs) + 2.0 * l2 * (w - w0)
        return value, grad

    before, _ = loss(w0)
    result = minimize(loss, w0, jac=True, method="L-BFGS-B")
    after = float(result.fun)
    w = result.x
    agree_before = float(np.mean(pairs @ w0 > 0))
    agree_after = float(np.mean(pairs @ w > 0))
    return RankerWeights.from_vector(
        w,
        source="learned",
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        stats={
            "searches": len(searches),
            "clicks": n_clicks,
            "pairs": len(pairs),
            "l2": l2,
            "loss_before": round(before, 5),
            "loss_after": round(after, 5),
            "pairs_ordered_before": round(agree_before, 4),
            "pairs_ordered_after": round(agree_after, 4),
        },
    )


@dataclass(frozen=True)
class LoggedSearch:
    """A search event joined with its clicks, as read from the memory store."""

    query: str
    shown: list[str]  # hashes in rank order
    clicked: set[str]
    timestamp: datetime | None = None  # when the search was made


def join_clicks(searches: Sequence[Any], clicks: Sequence[Any]) -> list[LoggedSearch]:
    """Attach clicks to searches: by ``search_id`` when both have it, else by query text.

    A click without a search id goes to the latest earlier search with the same
    query that showed the clicked commit. Searches without clicks are kept
    (they carry no preference, but count in the statistics).
    """
    ordered = sorted(searches, key=lambda s: s.timestamp)
    by_id = {s.search_id: i for i, s in enumerate(ordered) if s.search_id}
    clicked: list[set[str]] = [set() for _ in ordered]
    for c in clicks:
        target: int | None = by_id.get(c.search_id) if c.search_id else None
        if target is None:
            for i in range(len(ordered) - 1, -1, -1):
                s = ordered[i]
                if (
                    s.query == c.query
                    and s.timestamp <= c.timestamp
                    and any(
                        h.startswith(c.clicked_hash) or c.clicked_hash.startswith(h)
                        for h in s.results_shown
                    )
                ):
                    target = i
                    break
        if target is None:
            continue
        full = next(
            (h for h in ordered[target].results_shown if h.startswith(c.clicked_hash)),
            c.clicked_hash,
        )
        clicked[target].add(full)
    return [
        LoggedSearch(
            query=s.query,
            shown=list(s.results_shown),
            clicked=clicked[i],
            timestamp=getattr(s, "timestamp", None),
        )
        for i, s in enumerate(ordered)
    ]


def features_for_logged(
    index: Any, logged: Sequence[LoggedSearch], embed: Any
) -> list[ClickedSearch]:
    """Recompute the features of what was shown, against ``index`` (a ``SearchIndex``).

    ``embed`` maps a list of queries to their vectors. Commits the index no longer
    holds are dropped; searches with no click left carry no preference and are skipped.
    """
    from symbiotic_assets.search.text import parse_query

    useful = [s for s in logged if s.clicked and s.shown]
    if not useful:
        return []
    vectors = embed([s.query for s in useful])
    out: list[ClickedSearch] = []
    for s, vec in zip(useful, vectors, strict=True):
        docs = index.docs_for_hashes(s.shown)
        keep = [(h, d) for h, d in zip(s.shown, docs, strict=True) if d is not None]
        if not keep or not any(h in s.clicked for h, _ in keep):
            continue
        cand = index.candidates(parse_query(s.query), vec, extra_docs=[d for _, d in keep])
        row_of = {int(d): i for i, d in enumerate(cand.docs)}
        rows = [row_of[int(d)] for _, d in keep]
        out.append(
            ClickedSearch(
                query=s.query,
                features=cand.features[rows],
                clicked=np.array([h in s.clicked for h, _ in keep], dtype=bool),
            )
        )
    return out


# --------------------------------------------------------------------------- history pairs
# Fewer merged PRs than this and the defaults stay: a handful of pairs would move the
# weights on noise (the pull toward the prior is weak, since history is usually plentiful).
MIN_HISTORY_PRS = 30


@dataclass(frozen=True)
class HistoryQuery:
    """A merged pull request as a training example: its title and the commits it brought in."""

    title: str
    relevant: frozenset[str]  # commit hashes


def history_pairs(
    features: np.ndarray,
    relevant: np.ndarray,
    scores: np.ndarray,
    negatives: int = 30,
) -> np.ndarray:
    """Feature differences (relevant - non-relevant) for one query's candidates.

    Each relevant candidate is paired with the ``negatives`` best-scored
    non-relevant ones under the current weights: the ones a ranker has to beat
    to put the right commit near the top (far-down candidates teach little).
    """
    pos = np.flatnonzero(relevant)
    neg = np.flatnonzero(~relevant)
    if len(pos) == 0 or len(neg) == 0:
        return np.zeros((0, features.shape[1]))
    neg = neg[np.argsort(-scores[neg], kind="stable")[:negatives]]
    # at most three relevant commits (the best-scored): a 30-commit PR must not outvote
    # thirty one-commit PRs, and finding one of its commits is what MRR asks
    pos = pos[np.argsort(-scores[pos], kind="stable")[:3]]
    return (features[pos][:, None, :] - features[neg][None, :, :]).reshape(-1, features.shape[1])


def fit_pairs(
    pairs: np.ndarray, prior: RankerWeights | None = None, l2: float = 0.01, source: str = "history"
) -> RankerWeights:
    """Pairwise logistic regression on ``pairs`` (rows: preferred - other), pulled to ``prior``.

    Features that never differ within a pair (no information) keep the prior's weight.
    """
    from scipy.optimize import minimize

    if l2 <= 0:
        raise ValueError(f"l2={l2}: must be > 0 (it keeps weights near the prior)")
    prior = prior or RankerWeights()
    w0 = prior.vector()
    if len(pairs) == 0:
        return RankerWeights(weights=dict(prior.weights), source=prior.source, stats={"pairs": 0})

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        margin = pairs @ w
        value = float(np.mean(np.logaddexp(0.0, -margin)) + l2 * np.sum((w - w0) ** 2))
        sig = 0.5 * (1.0 + np.tanh(0.5 * margin))
        grad = -(pairs.T @ (1.0 - sig)) / len(pairs) + 2.0 * l2 * (w - w0)
        return value, grad

    before, _ = loss(w0)
    result = minimize(loss, w0, jac=True, method="L-BFGS-B")
    w = result.x
    return RankerWeights.from_vector(
        w,
        source=source,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        stats={
            "pairs": len(pairs),
            "l2": l2,
            "loss_before": round(float(before), 5),
            "loss_after": round(float(result.fun), 5),
            "pairs_ordered_before": round(float(np.mean(pairs @ w0 > 0)), 4),
            "pairs_ordered_after": round(float(np.mean(pairs @ w > 0)), 4),
        },
    )


def history_pair_matrix(
    index: Any,
    queries: Sequence[HistoryQuery],
    embed: Any,
    prior: RankerWeights | None = None,
    negatives: int = 30,
) -> np.ndarray:
    """Training pairs from merged PRs against ``index``, one row per (relevant, other) pair.

    Titles equal to one of their commits' subjects are left out: any method finds
    those, and they would teach the ranker to trust exact subject matches too much.
    """
    from symbiotic_assets.search.text import parse_query

    w0 = (prior or RankerWeights()).vector()
    useful: list[tuple[HistoryQuery, list[int]]] = []
    for q in queries:
        docs = [d for d in index.docs_for_hashes(sorted(q.relevant)) if d is not None]
        norm = " ".join(q.title.lower().split())
        if docs and not any(" ".join(index.subject(d).lower().split()) == norm for d in docs):
            useful.append((q, docs))
    if not useful:
        return np.zeros((0, len(FEATURES)))
    vectors = embed([" ".join(q.title.split()) for q, _ in useful])
    mask = ~np.asarray(index.is_merge, dtype=bool)
    chunks: list[np.ndarray] = []
    for (q, docs), vec in zip(useful, vectors, strict=True):
        cand = index.candidates(parse_query(q.title), vec, mask=mask)
        rel = np.isin(cand.docs, docs)
        chunks.append(history_pairs(cand.features, rel, cand.features @ w0, negatives))
    return np.vstack(chunks)


def learn_from_history(
    index: Any,
    queries: Sequence[HistoryQuery],
    embed: Any,
    prior: RankerWeights | None = None,
    l2: float = 0.01,
    negatives: int = 30,
) -> RankerWeights:
    """Ranker weights from a repository's own merged PRs, before anyone clicked.

    A PR pairs a human description of a change (its title) with the commits that
    made it: the same kind of evidence a click gives, free and plentiful. Pass
    only PRs older than anything the weights will be judged on. ``index`` is a
    ``SearchIndex``; ``embed`` maps a list of titles to their vectors.
    """
    pairs = history_pair_matrix(index, queries, embed, prior, negatives)
    weights = fit_pairs(pairs, prior, l2=l2)
    weights.stats["queries"] = len(queries)
    return weights
