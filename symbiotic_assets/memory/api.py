"""The memory's Python API: recommend a strategy, record attempts and feedback.

``recommend_strategy`` reads only what ``memory/recommender_index`` published
(``$SYMBIOTIC_HOME/published/recommender``) and embeds the issue at query time
with the model variant recorded there, so it keeps working while Dagster holds
the warehouse's write lock. The loaded recommender is cached per process and
reloaded when the pointer names a new version. Before anything is published it
answers "no history yet" instead of raising.

Recording goes straight to the memory store (re-exported here so that one import
path serves agents). Git figures (``get_velocity``, ``get_repository_health``) are in
``analytics.api``; ``symbiotic_assets.api`` gathers every public function in one place.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from symbiotic_assets.core.publish import PublishedCache
from symbiotic_assets.events.store import (
    get_fix_attempt,
    list_fix_attempts,
    record_feedback,
    record_fix_attempt,
)

if TYPE_CHECKING:  # pragma: no cover
    from symbiotic_assets.core.embedding import IssueEmbedder
    from symbiotic_assets.memory.serving import PublishedRecommender

__all__ = [
    "Evidence",
    "StrategyRecommendation",
    "get_fix_attempt",
    "list_fix_attempts",
    "record_feedback",
    "record_fix_attempt",
    "recommend_strategy",
]

_recommenders: PublishedCache[PublishedRecommender] | None = None


@dataclass(frozen=True)
class Evidence:
    """A similar past attempt behind a recommendation."""

    attempt_id: int | None
    similarity: float
    success: bool
    agent: str
    strategy: str
    timestamp: str  # ISO 8601, UTC
    issue_type: str
    message: str
    file_path: str


@dataclass(frozen=True)
class StrategyRecommendation:
    """Which agent and strategy to try, how sure we are (calibrated), and why.

    ``status`` is ``"ok"``, or ``"no_history"`` when nothing is published yet or
    the memory knows nothing about issues like this one (then agent, strategy and
    agent_strategy are None and confidence is 0).
    """

    agent: str | None
    strategy: str | None
    agent_strategy: str | None
    confidence: float
    evidence: list[Evidence] = field(default_factory=list)
    recommendation_id: str = ""
    status: str = "ok"
    reason: str = ""
    raw_probability: float | None = None
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    index_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_recommender_root() -> Path:
    from symbiotic_assets.core.config import load_settings

    return load_settings().published_dir / "recommender"


def open_recommender(root: Path | None = None) -> PublishedRecommender:
    """The published recommender, cached per process, reloaded when the pointer changes."""
    global _recommenders
    if _recommenders is None:  # built on first use: the serving module is not imported eagerly
        from symbiotic_assets.memory.serving import current_version, load_published

        _recommenders = PublishedCache(current_version, load_published)
    return _recommenders.get(root or default_recommender_root())


def _embedder_for(model_id: str) -> IssueEmbedder:
    """An embedder producing the same vectors as the published ``model_id``."""
    from symbiotic_assets.core.embedding import embedder_for_model_id

    return embedder_for_model_id(model_id)


def _field(issue: Any, name: str) -> Any:
    if isinstance(issue, Mapping):
        return issue.get(name)
    return getattr(issue, name, None)


def _issue_fields(issue: Any) -> tuple[str, str, str | None, str | None]:
    if issue is None:
        raise ValueError("issue: expected a mapping or an object with issue_type and message")
    issue_type = _field(issue, "issue_type")
    message = _field(issue, "message")
    if not isinstance(issue_type, str) or not issue_type.strip():
        raise ValueError(f"issue.issue_type: must be a non-empty string, got {issue_type!r}")
    if not isinstance(message, str) or not message.strip():
        raise ValueError(f"issue.message: must be a non-empty string, got {message!r}")
    file_path, stage = _field(issue, "file_path"), _field(issue, "stage")
    for name, value in (("file_path", file_path), ("stage", stage)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"issue.{name}: must be a string or None, got {value!r}")
    from symbiotic_assets.events.models import normalize_issue_type

    try:
        normalized = normalize_issue_type(issue_type)
    except ValueError as exc:
        raise ValueError(f"issue.issue_type {issue_type!r}: {exc}") from None
    return normalized, message, file_path, stage


def recommend_strategy(
    issue: Mapping[str, Any] | Any,
    *,
    root: Path | None = None,
    now: dt.datetime | None = None,
    max_evidence: int = 10,
) -> StrategyRecommendation:
    """Best agent:strategy for ``issue`` from the published history, with evidence.

    ``issue`` is a mapping or an object (e.g. a ``FixAttempt``) with
    ``issue_type`` and ``message`` and optionally ``file_path`` and ``stage``.
    Record what happened with ``record_feedback`` quoting ``recommendation_id``:
    the next training run folds it in.
    """
    from symbiotic_assets.memory.recommender import recommend
    from symbiotic_assets.memory.serving import RecommenderNotPublishedError

    issue_type, message, file_path, stage = _issue_fields(issue)
    rec_id = uuid.uuid4().hex
    try:
        published = open_recommender(root)
    except RecommenderNotPublishedError as exc:
        return StrategyRecommendation(
            None, None, None, 0.0, recommendation_id=rec_id, status="no_history",
            reason=f"no history yet: {exc}",
        )  # fmt: skip
    if len(published.memory) == 0:
        return StrategyRecommendation(
            None, None, None, 0.0, recommendation_id=rec_id, status="no_history",
            reason="no history yet: the published recommender holds no fix attempts",
            index_version=published.version,
        )  # fmt: skip
    vector = _embedder_for(published.model).embed_issue(issue_type, message, file_path, stage)
    rec = recommend(
        vector,
        issue_type,
        published.memory,
        published.state,
        now=now,
        index=published.index,
        max_evidence=max_evidence,
    )
    if rec is None:
        return StrategyRecommendation(
            None, None, None, 0.0, recommendation_id=rec_id, status="no_history",
            reason=f"no history yet for issues like this: no similar attempt and no "
            f"{issue_type!r} attempt recorded", index_version=published.version,
        )  # fmt: skip
    evidence = [
        Evidence(
            attempt_id=int(published.attempt_ids[e.row]),
            similarity=round(e.similarity, 4),
            success=e.success,
            agent=e.agent,
            strategy=e.strategy,
            timestamp=dt.datetime.fromtimestamp(e.timestamp, dt.UTC).isoformat(),
            issue_type=published.issue_type(e.row),
            message=published.message(e.row),
            file_path=published.file_path(e.row),
        )
        for e in rec.evidence
    ]
    return StrategyRecommendation(
        agent=rec.agent,
        strategy=rec.strategy,
        agent_strategy=rec.agent_strategy,
        confidence=rec.confidence,
        evidence=evidence,
        recommendation_id=rec_id,
        raw_probability=rec.raw_probability,
        alternatives=[
            {
                "agent_strategy": c.agent_strategy,
                "score": c.score,
                "probability": c.probability,
                "support": c.support,
            }
            for c in rec.alternatives[:5]
        ],  # fmt: skip
        index_version=published.version,
    )
