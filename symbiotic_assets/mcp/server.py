"""Symbiotic's MCP server: git metrics, commit search, strategy advice and recording tools.

Coding agents reach the platform through this server while they work, so it must answer
in the time of a tool call and never wait on the pipeline: every read goes to the
published artifacts (the snapshot ``published/warehouse.duckdb`` and the search index)
or to the memory store, never to the warehouse that Dagster writes. The one tool that
triggers work (``git_metrics_collector`` with ``refresh``) runs ``symbiotic run`` in a
subprocess, so that the extraction goes through the same code path, Dagster instance
and warehouse lock as every other run.

Inputs are typed with descriptions (the agent reads them as the tool's schema). What is
wrong with an input comes back as an MCP tool error (``is_error``) whose text names the
input, so that the agent can correct the call instead of guessing. Repository names are
checked against the configuration before anything else sees them; SQL only ever
receives them as bound parameters and git never receives them at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

SERVER_NAME = "symbiotic"
REFRESH_TIMEOUT_SECONDS = 1800
_REPOSITORY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Dates a filter or a window may name. The floor is the Unix epoch (git has no
# earlier history); the ceiling leaves room for the day after, so that window
# arithmetic never leaves Python's calendar.
EARLIEST_DATE = dt.date(1970, 1, 1)
LATEST_DATE = dt.date(9999, 12, 30)

INSTRUCTIONS = """\
Symbiotic knows the git history of the configured repositories, the outcomes of past
AI fix attempts, and agent sessions and skills. Ask `strategy_recommender` before
fixing an issue, record what you tried with `record_fix_attempt` and what became of the
advice with `record_recommendation_feedback`. `semantic_search` finds commits in plain
language; `git_metrics_collector` and `cross_project_analytics` describe how the
repositories move. Figures come from the last published snapshot (`symbiotic run`).
"""


# ---------------------------------------------------------------- input checking helpers


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn the platform's expected failures into tool errors the agent can read.

    The SDK would report any other exception as a crash with no message; these carry a
    message that names the input or the missing artifact, which is what the agent needs.
    """
    from symbiotic_assets.analytics.api import SnapshotMissingError
    from symbiotic_assets.core.config import ConfigError
    from symbiotic_assets.events.store import MemoryStoreError
    from symbiotic_assets.search.index import IndexNotPublishedError

    try:
        yield
    except ToolError:
        raise
    except (
        ValueError,  # includes InvalidRecordError and ConfigError
        LookupError,
        TypeError,
        SnapshotMissingError,
        IndexNotPublishedError,
        MemoryStoreError,
        ConfigError,
    ) as exc:
        raise ToolError(str(exc)) from exc


def configured_repository(name: str) -> Any:
    """The configured ``RepositorySpec`` called ``name``, or a tool error naming it."""
    from symbiotic_assets.core.config import load_settings

    if not _REPOSITORY_NAME.match(name):
        raise ToolError(
            f"repository={shown(name)}: not a repository name (1-100 letters, digits, '_', '.', "
            "'-', starting with a letter or digit); pass the configured name, not a path"
        )
    with tool_errors():
        specs = load_settings().all_repositories()
    for spec in specs:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in specs) or "none"
    raise ToolError(f"repository={name!r}: unknown repository; configured: {known}")


def shown(value: Any) -> str:
    """A short, encodable repr of a client's value for an error text."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_text(name: str, value: str | list[str] | None) -> None:
    """A tool error naming ``name`` when a text (or a list's item) is not valid Unicode.

    The SDK's argument validation refuses a lone high surrogate (``"\\ud800"``) but
    lets a lone low one (``"\\udc80"``) through; the tokenizer and SQLite cannot encode
    it and would fail with a message that names no argument.
    """
    for item in [value] if isinstance(value, str) else value or ():
        if _SURROGATE.search(item):
            raise ToolError(
                f"{name}={shown(item)}: contains a lone UTF-16 surrogate (not valid Unicode text)"
            )


def parse_date(name: str, value: str | None) -> dt.date | None:
    """An ISO date (``2024-03-01``) or datetime; a tool error naming ``name`` otherwise.

    A datetime with an offset is read in UTC; dates outside 1970-01-01..9999-12-30 are
    refused (``9999-12-31T23:00:00-01:00`` would overflow Python's calendar).
    """
    if value is None:
        return None
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
        else:
            parsed = dt.datetime.fromisoformat(value)
            day = (parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed).date()
    except ValueError:
        raise ToolError(
            f"{name}={shown(value)}: expected an ISO date such as 2024-03-01 "
            "(or a datetime such as 2024-03-01T12:00:00Z)"
        ) from None
    except OverflowError:
        raise ToolError(
            f"{name}={shown(value)}: outside the calendar once converted to UTC"
        ) from None
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ToolError(
            f"{name}={shown(value)}: out of range; dates run from {EARLIEST_DATE} to {LATEST_DATE}"
        )
    return day


def plain(value: Any) -> Any:
    """JSON-ready data from dataclasses, pydantic models, dates and containers."""
    if isinstance(value, BaseModel):
        return plain(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def record_in_store(kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``fields`` as a ``kind`` record and append it to the memory store.

    Fields left out (None) are not sent, so that model defaults apply and a missing
    timestamp stays out of the derived idempotency key (a retried call writes nothing).
    """
    from symbiotic_assets.core.config import load_settings
    from symbiotic_assets.events.models import validate_record
    from symbiotic_assets.events.store import MemoryStore

    given = {k: v for k, v in fields.items() if v is not None}
    with tool_errors():
        record = validate_record(kind, given)
        with MemoryStore(load_settings().memory_store) as store:
            result = store.record(record)
    return {
        "id": result.id,
        "created": result.created,
        "idempotency_key": record.effective_key(),
        "note": None if result.created else "already recorded with this key; nothing written",
    }


# ---------------------------------------------------------------- shared input types

RepositoryName = Annotated[
    str,
    Field(
        description="A configured repository name (see `symbiotic repos list`), e.g. 'symbiotic'. "
        "Paths are refused.",
        max_length=200,
    ),
]
DaysBack = Annotated[
    int, Field(ge=1, le=3650, description="Window length in days, ending on as_of (inclusive).")
]
AsOf = Annotated[
    str | None,
    Field(description="Last day of the window, ISO date (UTC), e.g. 2024-03-06. Default: today."),
]
IssueTypeText = Annotated[
    str,
    Field(
        description="Issue type: formatting, type_error, security, test_failure, import_error, "
        "complexity, dead_code, dependency, ...; new types are accepted.",
        max_length=100,
    ),
]
OptionalLabel = Annotated[str | None, Field(max_length=200)]
Timestamp = Annotated[
    str | None,
    Field(
        description="When it happened, ISO 8601 with a UTC offset (2025-01-31T09:15:00Z). "
        "Default: now."
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Field(
        description="Client idempotency key: a retry with the same key writes nothing. "
        "Default: derived from the content.",
        max_length=200,
    ),
]


# ---------------------------------------------------------------- tools


def git_metrics_collector(
    repository: RepositoryName,
    refresh: Annotated[
        bool,
        Field(
            description="First extract the repository's new commits and republish "
            "(runs `symbiotic run --repository NAME`; takes seconds to minutes)."
        ),
    ] = False,
    days_back: DaysBack = 30,
    as_of: AsOf = None,
) -> dict[str, Any]:
    """Commit velocity, branch switches, merge conflict rate and health of one repository.

    Figures over the window come from the published snapshot; branch switches are
    "unknown" where the repository has no reflog (bare or fresh clones), never 0.
    """
    from symbiotic_assets.analytics import api

    spec = configured_repository(repository)
    end = parse_date("as_of", as_of)
    refreshed: dict[str, Any] | None = None
    if refresh:
        refreshed = run_refresh(spec.name)
    with tool_errors():
        try:
            health = api.get_repository_health(spec.name)
        except LookupError:
            raise ToolError(
                f"repository={spec.name!r}: configured but not in the published snapshot yet; "
                "call again with refresh=true or run `symbiotic run`"
            ) from None
        dashboard = api.get_git_velocity_dashboard([spec.name], days_back=days_back, as_of=end)
    (row,) = [r for r in dashboard["repositories"] if r["repository"] == spec.name]
    return {
        "repository": spec.name,
        "window": {"since": dashboard["since"], "until": dashboard["until"], "days": days_back},
        "commits": row["commits"],
        "non_merge_commits": row["non_merge_commits"],
        "merge_commits": row["merge_commits"],
        "commits_per_day": row["commits_per_day"],
        "non_merge_commits_per_day": row["non_merge_commits_per_day"],
        "active_days": row["active_days"],
        "has_reflog": bool(health["has_reflog"]),
        "branch_switches": row["branch_switches"],
        "branch_switches_per_day": row["branch_switches_per_day"],
        "two_parent_merges": row["two_parent_merges"],
        "conflicting_merges": row["conflicting_merges"],
        "merge_conflict_rate": row["merge_conflict_rate"],
        "all_time": {
            "reachable_commits": health["reachable_commits"],
            "two_parent_merges": health["two_parent_merges"],
            "conflicting_merges": health["conflicting_merges"],
            "merge_conflict_rate": health["conflict_rate"],
        },
        "health": {
            "score": health["health_score"],
            "last_commit_at": health["last_commit_at"],
            "branches": health["branches"],
            "unmerged_branches": health["unmerged_branches"],
            "stale_branches": health["stale_branches"],
            "stale_branch_names": health["stale_branch_names"],
            "bus_factor": health["bus_factor"],
            "velocity_trend": health["velocity_trend"],
            "conflict_trend": health["conflict_trend"],
            "as_of": health["as_of"],
        },
        "daily": row["daily"],
        "refresh": refreshed,
    }


def run_refresh(name: str) -> dict[str, Any]:
    """``symbiotic run --repository NAME`` in a subprocess; a tool error when it fails.

    A subprocess rather than in-process execution: the run takes the warehouse's
    writer lock and Dagster's run bookkeeping exactly as a scheduled run would, and the
    server's own process never holds the warehouse open. ``name`` was checked against
    the configuration and cannot start with '-', so it is never read as an option.
    """
    command = [sys.executable, "-m", "symbiotic_assets.cli", "run", "--repository", name]
    started = dt.datetime.now(dt.UTC)
    try:
        proc = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=REFRESH_TIMEOUT_SECONDS,
            check=False,
            stdin=subprocess.DEVNULL,  # stdin is the MCP channel over stdio
        )
    except subprocess.TimeoutExpired:
        raise ToolError(
            f"refresh of repository={name!r} took longer than {REFRESH_TIMEOUT_SECONDS} s"
        ) from None
    seconds = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise ToolError(f"refresh of repository={name!r} failed (exit {proc.returncode}): {tail}")
    return {"ran": True, "seconds": seconds}


def semantic_search(
    query: Annotated[
        str,
        Field(
            min_length=1,
            max_length=2000,
            description="What you are looking for, in words or identifiers, e.g. "
            "'where did we change the retry backoff'.",
        ),
    ],
    k: Annotated[int, Field(ge=1, le=100, description="How many results (1-100).")] = 10,
    repositories: Annotated[
        list[str] | None, Field(description="Only these repository names.")
    ] = None,
    authors: Annotated[
        list[str] | None, Field(description="Author name contains one of these (case-insensitive).")
    ] = None,
    since: Annotated[
        str | None, Field(description="Authored on or after this ISO date (UTC), e.g. 2024-03-01.")
    ] = None,
    until: Annotated[str | None, Field(description="Authored before this ISO date (UTC).")] = None,
    paths: Annotated[
        list[str] | None, Field(description="Touching a path under one of these prefixes.")
    ] = None,
    include_merges: Annotated[bool, Field(description="Include merge commits.")] = False,
    record: Annotated[
        bool,
        Field(
            description="Record the search in the memory store so that a later "
            "record_search_click with the returned search_id teaches the ranker."
        ),
    ] = True,
    commits_only: Annotated[
        bool,
        Field(
            description="Only the flat commit list; by default 'changes' also groups the "
            "commits of one pull request (title, number, branch, commits, files) once."
        ),
    ] = False,
) -> dict[str, Any]:
    """Changes and commits best matching a plain-language query across all repositories.

    ``changes``: up to k pull requests (or lone commits), each once, with the hashes of
    its matching commits, best first; ``results``: the k best commits, ungrouped.
    """
    from symbiotic_assets.search import api

    for name in repositories or ():
        if not _REPOSITORY_NAME.match(name):
            raise ToolError(f"repositories: {shown(name)} is not a repository name")
    for name, texts in (("query", query), ("authors", authors), ("paths", paths)):
        check_text(name, texts)
    parse_date("since", since)
    parse_date("until", until)
    with tool_errors():
        results = api.semantic_search(
            query,
            k=k if commits_only else api.grouped_pool(k),
            repositories=repositories,
            authors=authors,
            since=since,
            until=until,
            paths=paths,
            include_merges=include_merges,
        )
        changes = [] if commits_only else api.changes_of(results, k)
        results = results[:k]  # the flat top k, as without grouping
        search_id = api.record_search(query, results) if record and results else None
    out: dict[str, Any] = {"query": query, "search_id": search_id}
    if not commits_only:
        out["changes"] = [
            {**ch.to_dict(), "commits": [r.hash for r in ch.commits]} for ch in changes
        ]
    out["results"] = [r.to_dict() for r in results]
    return out


def record_search_click(
    query: Annotated[str, Field(min_length=1, description="The query as searched.")],
    clicked_hash: Annotated[str, Field(description="Full or abbreviated hash of the commit.")],
    rank: Annotated[int, Field(ge=1, description="Its 1-based rank in the results.")],
    search_id: Annotated[
        str | None, Field(description="The search_id semantic_search returned.", max_length=100)
    ] = None,
) -> dict[str, Any]:
    """Record which search result was the one wanted; the ranker learns from clicks."""
    return record_in_store(
        "search_click",
        {
            "query": query,
            "clicked_hash": clicked_hash,
            "rank": rank,
            "search_id": search_id,
            "idempotency_key": f"click:{search_id}:{clicked_hash}" if search_id else None,
        },
    )


def strategy_recommender(
    issue_type: IssueTypeText,
    message: Annotated[str, Field(min_length=1, description="The issue as the tool reported it.")],
    file_path: Annotated[str | None, Field(description="File the issue is in.")] = None,
    stage: Annotated[
        str | None,
        Field(description="fast, comprehensive, or the tool that found it (mypy, bandit, ...)."),
    ] = None,
    project: OptionalLabel = None,
    language: OptionalLabel = None,
) -> dict[str, Any]:
    """Which agent and strategy fixed issues like this one, and how sure we are.

    Pass the returned recommendation_id to record_recommendation_feedback once you know
    whether the advice was followed and how it ended: that is what calibrates confidence.
    """
    from symbiotic_assets.events.models import normalize_issue_type

    for name, text in (("message", message), ("file_path", file_path), ("stage", stage)):
        check_text(name, text)
    with tool_errors():
        try:
            normalize_issue_type(issue_type)
        except ValueError as exc:
            raise ToolError(f"issue_type={shown(issue_type)}: {exc}") from None
    issue = {
        k: v
        for k, v in {
            "issue_type": issue_type,
            "message": message,
            "file_path": file_path,
            "stage": stage,
            "project": project,
            "language": language,
        }.items()
        if v is not None
    }
    from symbiotic_assets.memory.api import recommend_strategy

    with tool_errors():
        recommendation = plain(recommend_strategy(issue))
    if recommendation.get("status") == "no_history":
        # The similarity recommender is published by the memory_learn job; until it has
        # run, the strategy mart (published by analytics_refresh) still knows the odds.
        fallback = recommend_from_mart(issue_type)
        if fallback["agent"] is not None:
            return {**fallback, "note": recommendation.get("reason")}
    return {"source": "memory recommender", **recommendation}


def recommend_from_mart(issue_type: str) -> dict[str, Any]:
    """The best agent:strategy for the issue type from ``fct_strategy_effectiveness``.

    Used while the similarity recommender has no published index: the mart already ranks by smoothed success rate ((s + 1) / (n + 2)), which is
    what the confidence reports; it is not calibrated on replayed history.
    """
    from symbiotic_assets.analytics import api

    with tool_errors():
        effectiveness = api.get_strategy_effectiveness(issue_type)
    rows = effectiveness["strategies"]
    if not rows:
        return {
            "source": "fct_strategy_effectiveness",
            "issue_type": effectiveness["issue_type"],
            "agent": None,
            "strategy": None,
            "confidence": 0.0,
            "evidence": [],
            "recommendation_id": None,
            "note": "no fix attempts recorded for this issue type; known types: "
            + (", ".join(effectiveness["issue_types"]) or "none"),
        }
    best = rows[0]
    return {
        "source": "fct_strategy_effectiveness",
        "issue_type": effectiveness["issue_type"],
        "agent": best["agent"],
        "strategy": best["strategy"],
        "confidence": round(float(best["smoothed_success_rate"]), 4),
        "evidence": [
            {
                "agent_strategy": r["agent_strategy"],
                "attempts": r["attempts"],
                "successes": r["successes"],
                "success_rate": r["success_rate"],
                "smoothed_success_rate": r["smoothed_success_rate"],
            }
            for r in rows[:5]
        ],
        "recommendation_id": f"rec-{uuid.uuid4().hex}",
    }


def skill_tracker(
    action: Annotated[
        Literal["record", "query"],
        Field(description="'record' one skill invocation, or 'query' skill effectiveness."),
    ],
    skill: Annotated[
        str | None,
        Field(description="Skill name (required to record; filters a query).", max_length=200),
    ] = None,
    project: Annotated[
        str | None, Field(description="Project the skill ran in; a query is scoped to it.")
    ] = None,
    session_id: OptionalLabel = None,
    language: Annotated[str | None, Field(max_length=50)] = None,
    complexity: Annotated[
        str | None, Field(description="e.g. low, medium, high.", max_length=200)
    ] = None,
    completed: Annotated[
        bool | None, Field(description="Whether the invocation ran to the end (record).")
    ] = None,
    succeeded: Annotated[
        bool | None, Field(description="Whether it achieved its goal; omit if unknown.")
    ] = None,
    duration_seconds: Annotated[float | None, Field(ge=0)] = None,
    error_type: OptionalLabel = None,
    timestamp: Timestamp = None,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Record a skill invocation, or ask which skills work (overall or in one project).

    A query reads the published marts (success rates smoothed so that one lucky run does
    not top the list) and adds the invocations recorded since, straight from the store.
    """
    if action == "record":
        if skill is None:
            raise ToolError("skill: required when action='record'")
        if completed is None:
            raise ToolError("completed: required when action='record'")
        return record_in_store(
            "skill_invocation",
            {
                "skill": skill,
                "session_id": session_id,
                "project": project,
                "language": language,
                "complexity": complexity,
                "completed": completed,
                "succeeded": succeeded,
                "duration_seconds": duration_seconds,
                "error_type": error_type,
                "timestamp": timestamp,
                "idempotency_key": idempotency_key,
            },
        )
    from symbiotic_assets.analytics import api
    from symbiotic_assets.core.config import load_settings
    from symbiotic_assets.events.store import MemoryStore

    with tool_errors():
        effectiveness = api.get_skill_effectiveness(project)
        with MemoryStore(load_settings().memory_store) as store:
            events = store.list_events("skill_invocation", limit=100_000)
    if skill is not None:
        effectiveness["skills"] = [s for s in effectiveness["skills"] if s["skill"] == skill]
    recorded = [e.payload for e in events]
    if skill is not None:
        recorded = [p for p in recorded if p.get("skill") == skill]
    if project is not None:
        recorded = [p for p in recorded if str(p.get("project") or "").lower() == project.lower()]
    effectiveness["memory_store"] = {
        "invocations": len(recorded),
        "succeeded": sum(1 for p in recorded if p.get("succeeded") is True),
        "failed": sum(1 for p in recorded if p.get("succeeded") is False),
    }
    return plain(effectiveness)


def cross_project_analytics(days_back: DaysBack = 90, as_of: AsOf = None) -> dict[str, Any]:
    """Velocity and conflict rate of every repository, commit timing, and shared failures.

    Per-repository figures and their totals over the window, the busiest weekday x hour
    slots (author's local time), whether conflicts follow speed, and issue types and
    strategies that fail across projects.
    """
    from symbiotic_assets.analytics import api

    end = parse_date("as_of", as_of)
    with tool_errors():
        dashboard = api.get_git_velocity_dashboard(None, days_back=days_back, as_of=end)
        patterns = api.get_cross_project_patterns(days_back, as_of=end)
    repositories = [
        {k: v for k, v in r.items() if k not in ("daily", "repository_path")}
        for r in dashboard["repositories"]
    ]
    two_parent = sum(r["two_parent_merges"] for r in repositories)
    conflicting = sum(r["conflicting_merges"] for r in repositories)
    commits = sum(r["commits"] for r in repositories)
    return {
        "window": {"since": dashboard["since"], "until": dashboard["until"], "days": days_back},
        "totals": {
            "repositories": len(repositories),
            "commits": commits,
            "commits_per_day": commits / days_back,
            "two_parent_merges": two_parent,
            "conflicting_merges": conflicting,
            "merge_conflict_rate": conflicting / two_parent if two_parent else None,
        },
        "repositories": repositories,
        "busiest_slots": patterns["busiest_slots"],
        "by_repository_timing": patterns["by_repository"],
        "conflict_velocity": patterns["conflict_velocity"],
        "common_issue_types": patterns["common_issue_types"],
        "failing_strategies": patterns["failing_strategies"],
    }


def record_fix_attempt(
    issue_type: IssueTypeText,
    message: Annotated[str, Field(description="The issue as the tool reported it.")],
    stage: Annotated[
        str, Field(description="fast, comprehensive, or the tool (ruff-check, mypy, bandit, ...).")
    ],
    agent: Annotated[str, Field(description="The agent that tried, e.g. SecurityAgent.")],
    strategy: Annotated[
        str, Field(description="The strategy the agent chose, e.g. security_fix (free text).")
    ],
    success: Annotated[bool, Field(description="Whether the fix worked.")],
    file_path: Annotated[str | None, Field(description="File the issue is in.")] = None,
    line_number: Annotated[int | None, Field(description="Line of the issue.")] = None,
    session_id: OptionalLabel = None,
    project: OptionalLabel = None,
    language: Annotated[str | None, Field(max_length=50)] = None,
    timestamp: Timestamp = None,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Record one fix attempt and its outcome, so the next similar issue gets better advice."""
    return record_in_store(
        "fix_attempt",
        {
            "issue_type": issue_type,
            "message": message,
            "file_path": file_path,
            "line_number": line_number,
            "stage": stage,
            "agent": agent,
            "strategy": strategy,
            "success": success,
            "session_id": session_id,
            "project": project,
            "language": language,
            "timestamp": timestamp,
            "idempotency_key": idempotency_key,
        },
    )


def record_recommendation_feedback(
    recommendation_id: Annotated[
        str, Field(description="The recommendation_id strategy_recommender returned.")
    ],
    shown: Annotated[bool, Field(description="Whether it was shown to the agent.")] = True,
    followed: Annotated[bool, Field(description="Whether the agent followed it.")] = False,
    outcome: Annotated[
        Literal["succeeded", "failed", "unknown"],
        Field(description="How the fix ended when followed."),
    ] = "unknown",
    confidence: Annotated[
        float | None, Field(description="The confidence shown with it (0-1).")
    ] = None,
    fix_attempt_id: Annotated[
        int | None, Field(description="The id record_fix_attempt returned for the attempt.")
    ] = None,
    issue_type: Annotated[str | None, Field(max_length=100)] = None,
    agent: Annotated[str | None, Field(max_length=100)] = None,
    strategy: OptionalLabel = None,
    session_id: OptionalLabel = None,
    project: OptionalLabel = None,
    timestamp: Timestamp = None,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Record what became of a recommendation: shown, followed or not, and the outcome.

    Ignored advice is as informative as followed advice: follow rates and calibration
    are computed from these rows.
    """
    return record_in_store(
        "feedback",
        {
            "recommendation_id": recommendation_id,
            "shown": shown,
            "followed": followed,
            "outcome": outcome,
            "confidence": confidence,
            "fix_attempt_id": fix_attempt_id,
            "issue_type": issue_type,
            "agent": agent,
            "strategy": strategy,
            "session_id": session_id,
            "project": project,
            "timestamp": timestamp,
            "idempotency_key": idempotency_key,
        },
    )


TOOLS = (
    git_metrics_collector,
    semantic_search,
    strategy_recommender,
    skill_tracker,
    cross_project_analytics,
    record_fix_attempt,
    record_recommendation_feedback,
    record_search_click,
)


def build_server() -> MCPServer:
    """A fresh server with every tool registered (cheap: nothing heavy is imported)."""
    server: MCPServer = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, log_level="WARNING")
    for fn in TOOLS:
        server.add_tool(fn)
    return server
