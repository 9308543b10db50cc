"""The records the memory store accepts, validated before anything is written.

Producers (agents, the quality loop, batch exports) send whatever they have; the
warehouse and the recommender downstream must be able to trust every row. So
each record is checked here, at the door, and a bad one is refused with the
field and the problem named, rather than stored and discovered months later.

Vocabulary (issue types, agents, strategies, stages) is the quality loop's. The
known values are listed for readers, but values outside the lists are stored:
a new issue type or a new agent is information, not an error. Only the shape
is enforced (non-empty, no control characters, bounded length).

Timestamps must carry a UTC offset (or ``Z``); a naive timestamp is refused
because guessing its zone is how earlier tools lost or shifted events. They are
normalised to UTC, and must fall between 1970-01-01 and one day after the time
of arrival: a year-1 or year-9999 timestamp is a producer's bug (an unset
clock, a sentinel value), and the extremes of Python's calendar overflow when
shifted to UTC. Ids that refer to rows are bounded to SQLite's signed 64-bit
integers, so a value that passes here can always be stored.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

KNOWN_ISSUE_TYPES: frozenset[str] = frozenset(
    {
        "formatting",
        "type_error",
        "security",
        "test_failure",
        "import_error",
        "complexity",
        "dead_code",
        "dependency",
        "dry_violation",
        "performance",
        "documentation",
        "test_organization",
        "coverage_improvement",
        "regex_validation",
        "semantic_context",
        "warning",
        "refurb",
    }
)
KNOWN_AGENTS: frozenset[str] = frozenset(
    {
        "ArchitectAgent",
        "CoverageFanOutAgent",
        "DeadCodeRemovalAgent",
        "DependencyAgent",
        "DocumentationAgent",
        "DRYAgent",
        "FormattingAgent",
        "ImportOptimizationAgent",
        "PatternAgent",
        "PerformanceAgent",
        "RefactoringAgent",
        "RefurbCodeTransformerAgent",
        "SecurityAgent",
        "SemanticAgent",
        "TestCreationAgent",
        "TestEnvironmentAgent",
        "TestSpecialistAgent",
        "TypeErrorSpecialistAgent",
        "WarningSuppressionAgent",
    }
)
EXAMPLE_STRATEGIES: frozenset[str] = frozenset(
    {
        "refactor",
        "format",
        "security_fix",
        "test_generation",
        "import_fix",
        "dry_refactor",
        "performance_optimize",
        "doc_update",
        "dead_code_remove",
        "type_error_fix",
    }
)
KNOWN_STAGES: frozenset[str] = frozenset(
    {
        "fast",
        "comprehensive",
        "ruff-check",
        "ruff-format",
        "mypy",
        "pytest",
        "bandit",
        "semgrep",
        "gitleaks",
        "complexity",
        "refurb",
    }
)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

# Row ids and anything that refers to one: SQLite's INTEGER is signed 64-bit.
MAX_ID = 2**63 - 1
# Event times the store accepts: not before the Unix epoch, at most this far ahead
# of the time of arrival (clocks drift; a day covers any honest skew).
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
# Validation context key: rows read back from the store were accepted under the
# rules of their day and are not re-judged (``StoredEvent.parsed``).
TRUSTED = "stored_row"
_AGENT = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
_HEX = re.compile(r"^[0-9a-f]{4,64}$")


def printable(text: str) -> str:
    """``text`` with lone surrogates shown as ``\\udXXX``, so it can be encoded as UTF-8.

    Messages quote what the client sent; a lone surrogate (from JSON ``"\\ud800"``
    or an undecodable file name) would make SQLite, a terminal or a JSON encoder
    fail on the message itself instead of showing it.
    """
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class InvalidRecordError(ValueError):
    """A record failed validation; ``problems`` holds (field, problem) pairs.

    The message is one line per problem, ``<kind>.<field>: <problem> (got <value>)``
    (just the problem when it concerns the whole input, such as invalid JSON),
    short enough to be a quarantine reason or a CLI error.
    """

    def __init__(self, kind: str, problems: list[tuple[str, str]]) -> None:
        self.kind = printable(kind)
        self.problems = [(printable(f), printable(p)) for f, p in problems]
        super().__init__(
            "; ".join(
                p
                if f == "(line)"
                else f"{self.kind}: {p}"
                if f[0] == "("
                else f"{self.kind}.{f}: {p}"
                for f, p in self.problems
            )
        )

    @classmethod
    def from_validation_error(cls, kind: str, exc: ValidationError) -> InvalidRecordError:
        problems: list[tuple[str, str]] = []
        for err in exc.errors(include_url=False):
            field = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            if not field:
                # Cross-field checks raise "<field>: <problem>"; keep the field they name.
                named = re.match(r"^([a-z_]+): (.+)$", msg, re.S)
                field, msg = (named.group(1), named.group(2)) if named else ("(record)", msg)
            elif err["type"] not in ("missing", "extra_forbidden") and "input" in err:
                msg = f"{msg} (got {_shown(err['input'])})"
            problems.append((field, msg))
        return cls(kind, problems)


def _shown(value: Any) -> str:
    """A short repr of a rejected value; never fails, whatever the value."""
    if isinstance(value, list | tuple | dict | set) and len(value) > 20:
        return f"a {type(value).__name__} of {len(value)} items"
    try:
        shown = repr(value)
    except (RecursionError, ValueError):  # deeply nested, or a 5,000-digit int
        return f"{type(value).__name__} too large to show"
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _clean_text(value: str) -> str:
    value = value.strip()
    if _CONTROL.search(value):
        raise ValueError("contains control characters")
    if _SURROGATE.search(value):
        raise ValueError("contains a lone UTF-16 surrogate (not valid Unicode text)")
    return value


def _require_text(value: str) -> str:
    value = _clean_text(value)
    if not value:
        raise ValueError("must not be empty")
    return value


def _optional_text(value: str | None) -> str | None:
    if value is None:
        return None
    value = _clean_text(value)
    return value or None


def normalize_issue_type(value: str) -> str:
    """One spelling per issue type, so that grouping works: "Type-Error" is type_error."""
    value = re.sub(r"[\s-]+", "_", _require_text(value).lower())
    if not re.fullmatch(r"[a-z0-9_.:/]+", value):
        raise ValueError("must be a word such as 'type_error' (letters, digits, '_')")
    return value


def _agent(value: str) -> str:
    value = _require_text(value)
    if not _AGENT.match(value):
        raise ValueError(
            "must be an agent name such as 'RefactoringAgent' (letters, digits, '_', '.', '-')"
        )
    return value


def _utc(value: datetime, info: ValidationInfo) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a UTC offset, e.g. 2025-01-31T09:15:00Z or +02:00")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            "is outside the calendar once converted to UTC (years 1 to 9999)"
        ) from None
    if isinstance(info.context, dict) and info.context.get(TRUSTED):
        return utc
    latest = _now() + FUTURE_SLACK
    if not EARLIEST_TIMESTAMP <= utc <= latest:
        raise ValueError(
            f"out of range: must be between {EARLIEST_TIMESTAMP:%Y-%m-%dT%H:%M:%SZ} and one "
            f"day from now ({latest:%Y-%m-%dT%H:%M:%SZ})"
        )
    return utc


def _now() -> datetime:
    return datetime.now(UTC)


RequiredText = Annotated[str, AfterValidator(_require_text)]
OptionalText = Annotated[str | None, AfterValidator(_optional_text)]
IssueType = Annotated[str, Field(max_length=100), AfterValidator(normalize_issue_type)]
AgentName = Annotated[str, AfterValidator(_agent)]
UtcTimestamp = Annotated[datetime, AfterValidator(_utc)]
Label = Annotated[str | None, Field(max_length=200), AfterValidator(_optional_text)]


def format_timestamp(value: datetime) -> str:
    """Fixed-width UTC ISO text, so that string order in SQLite is time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


class MemoryRecord(BaseModel):
    """Common shape: an optional client idempotency key and a UTC timestamp.

    When the client sends no key, one is derived from the content (see
    ``effective_key``), so that a client that retries the very same record
    after a timeout is not counted twice.
    """

    model_config = ConfigDict(extra="forbid", str_max_length=20_000, populate_by_name=True)

    kind: ClassVar[str] = "record"

    idempotency_key: Annotated[str | None, Field(max_length=200)] = None
    timestamp: UtcTimestamp = Field(default_factory=_now)

    @field_validator("idempotency_key")
    @classmethod
    def _key_shape(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = _require_text(value)
        return value

    def content_key(self) -> str:
        """A key derived from what the client sent.

        Every field takes part, normalised (timestamps in UTC, issue types in
        one spelling), except the timestamp when the client did not send one:
        the store fills it with the time of arrival, which differs between a
        request and its retry. Producers that legitimately send the same
        content twice without a timestamp must send their own key.
        """
        data = self.model_dump(mode="json", exclude={"idempotency_key"})
        if "timestamp" not in self.model_fields_set:
            data.pop("timestamp", None)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(f"{self.kind}\n{canonical}".encode()).hexdigest()
        return f"{self.kind}:sha256:{digest}"

    def effective_key(self) -> str:
        return self.idempotency_key or self.content_key()


class FixAttempt(MemoryRecord):
    """One try by one agent, with one strategy, at one issue, and whether it worked."""

    kind: ClassVar[str] = "fix_attempt"

    issue_type: IssueType
    message: RequiredText
    file_path: Annotated[str | None, Field(max_length=4096), AfterValidator(_optional_text)] = None
    line_number: Annotated[int | None, Field(ge=0, le=100_000_000)] = None
    stage: Annotated[str, Field(max_length=100), AfterValidator(_require_text)]
    agent: Annotated[str, Field(max_length=100), AfterValidator(_agent)]
    strategy: Annotated[str, Field(max_length=200), AfterValidator(_require_text)]
    success: bool
    session_id: Label = None
    project: Label = None
    language: Annotated[str | None, Field(max_length=50), AfterValidator(_optional_text)] = None

    @field_validator("language")
    @classmethod
    def _language_lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    @property
    def is_known_issue_type(self) -> bool:
        return self.issue_type in KNOWN_ISSUE_TYPES


Outcome = Literal["succeeded", "failed", "unknown"]


class RecommendationFeedback(MemoryRecord):
    """What happened to a recommendation: shown, followed or not, and how it ended.

    Click-through and follow rates are computed from these rows; a recommendation
    that was shown and ignored is as informative as one that was followed.
    """

    kind: ClassVar[str] = "feedback"

    recommendation_id: Annotated[str, Field(max_length=200), AfterValidator(_require_text)]
    fix_attempt_id: Annotated[int | None, Field(ge=1, le=MAX_ID)] = None
    issue_type: Annotated[str | None, Field(max_length=100)] = None
    agent: Annotated[str | None, Field(max_length=100)] = None
    strategy: Label = None
    shown: bool = True
    followed: bool = Field(default=False, validation_alias=AliasChoices("followed", "accepted"))
    outcome: Outcome = "unknown"
    confidence: Annotated[float | None, Field(ge=0.0, le=1.0, allow_inf_nan=False)] = None
    session_id: Label = None
    project: Label = None

    @field_validator("issue_type")
    @classmethod
    def _issue_type_shape(cls, value: str | None) -> str | None:
        return None if value is None else normalize_issue_type(value)

    @field_validator("agent")
    @classmethod
    def _agent_shape(cls, value: str | None) -> str | None:
        return None if value is None else _agent(value)

    @model_validator(mode="after")
    def _followed_needs_shown(self) -> RecommendationFeedback:
        if self.followed and not self.shown:
            raise ValueError("followed: a recommendation that was not shown cannot be followed")
        return self


class EventRecord(MemoryRecord):
    """Base of the event kinds stored in the generic ``events`` table."""

    event_type: ClassVar[str] = "event"


class SessionEvent(EventRecord):
    """Start or end of an agent session; the end carries duration and quality."""

    kind: ClassVar[str] = "session"
    event_type: ClassVar[str] = "session"

    session_id: Annotated[str, Field(max_length=200), AfterValidator(_require_text)]
    phase: Literal["start", "end"]
    project: Label = None
    language: Annotated[str | None, Field(max_length=50), AfterValidator(_optional_text)] = None
    duration_seconds: Annotated[float | None, Field(ge=0.0, allow_inf_nan=False)] = None
    quality_score: Annotated[float | None, Field(ge=0.0, le=100.0, allow_inf_nan=False)] = None
    tools_used: list[Annotated[str, Field(max_length=200), AfterValidator(_require_text)]] = Field(
        default_factory=list, max_length=500
    )

    @model_validator(mode="after")
    def _end_only_fields(self) -> SessionEvent:
        if self.phase == "start" and self.duration_seconds is not None:
            raise ValueError("duration_seconds: only a session 'end' event has a duration")
        return self


class SkillInvocation(EventRecord):
    """One use of a skill (an agent or tool capability) within a session."""

    kind: ClassVar[str] = "skill_invocation"
    event_type: ClassVar[str] = "skill_invocation"

    skill: Annotated[str, Field(max_length=200), AfterValidator(_require_text)] = Field(
        validation_alias=AliasChoices("skill", "skill_name")
    )
    session_id: Label = None
    project: Label = None
    language: Annotated[str | None, Field(max_length=50), AfterValidator(_optional_text)] = None
    complexity: Label = None
    completed: bool
    succeeded: bool | None = None
    duration_seconds: Annotated[float | None, Field(ge=0.0, allow_inf_nan=False)] = None
    error_type: Label = None

    @model_validator(mode="after")
    def _success_needs_completion(self) -> SkillInvocation:
        if self.succeeded and not self.completed:
            raise ValueError("succeeded: an invocation that did not complete cannot have succeeded")
        return self


class SearchEvent(EventRecord):
    """A query and the results shown for it, in rank order."""

    kind: ClassVar[str] = "search"
    event_type: ClassVar[str] = "search"

    search_id: Annotated[str | None, Field(max_length=200), AfterValidator(_optional_text)] = None
    query: Annotated[str, Field(max_length=2000), AfterValidator(_require_text)]
    results_shown: list[Annotated[str, Field(max_length=200), AfterValidator(_require_text)]] = (
        Field(default_factory=list, max_length=1000)
    )
    session_id: Label = None
    project: Label = None


class SearchClick(EventRecord):
    """A result picked from a search; ranking learns from these."""

    kind: ClassVar[str] = "search_click"
    event_type: ClassVar[str] = "search_click"

    search_id: Annotated[str | None, Field(max_length=200), AfterValidator(_optional_text)] = None
    query: Annotated[str, Field(max_length=2000), AfterValidator(_require_text)]
    clicked_hash: Annotated[str, Field(max_length=64)]
    rank: Annotated[int, Field(ge=1, le=10_000)]
    session_id: Label = None
    project: Label = None

    @field_validator("clicked_hash")
    @classmethod
    def _hash_shape(cls, value: str) -> str:
        value = value.strip().lower()
        if not _HEX.match(value):
            raise ValueError("must be a hexadecimal commit hash of 4 to 64 characters")
        return value


EVENT_MODELS: dict[str, type[EventRecord]] = {
    m.event_type: m for m in (SessionEvent, SkillInvocation, SearchEvent, SearchClick)
}
RECORD_MODELS: dict[str, type[MemoryRecord]] = {
    "fix_attempt": FixAttempt,
    "feedback": RecommendationFeedback,
    **EVENT_MODELS,
}


def validate_record(kind: str, data: Any) -> MemoryRecord:
    """Validate ``data`` as a record of ``kind``; raise ``InvalidRecordError`` naming fields."""
    model = RECORD_MODELS.get(kind)
    if model is None:
        raise InvalidRecordError(
            "record", [("type", f"unknown record type {kind!r}; one of {sorted(RECORD_MODELS)}")]
        )
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise InvalidRecordError(
            kind, [("(record)", f"expected an object, got {type(data).__name__}")]
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRecordError.from_validation_error(kind, exc) from None


class StoredFixAttempt(FixAttempt):
    """A fix attempt as read back: the row id, its key and its correction state."""

    id: int
    idempotency_key: str  # type: ignore[assignment]
    recorded_at: datetime
    updated_at: datetime | None = None
    deleted: bool = False


class StoredFeedback(RecommendationFeedback):
    id: int
    idempotency_key: str  # type: ignore[assignment]
    recorded_at: datetime


class StoredEvent(BaseModel):
    """An event row; ``parsed()`` gives back the typed model it was validated as."""

    id: int
    idempotency_key: str
    event_type: str
    payload: dict[str, Any]
    timestamp: datetime
    recorded_at: datetime

    def parsed(self) -> EventRecord:
        model = EVENT_MODELS[self.event_type]
        return model.model_validate(
            {**self.payload, "timestamp": self.timestamp, "idempotency_key": self.idempotency_key},
            context={TRUSTED: True},
        )
