"""Python API over the marts, reading the published snapshot only.

The snapshot (``$SYMBIOTIC_HOME/published/warehouse.duckdb``) is attached read-only under
the catalog name ``warehouse`` in a private in-memory DuckDB, for the duration of one call:
no lock on the warehouse Dagster writes, and a publish that replaces the file is seen by
the next call. Results are plain JSON-ready dicts (the MCP server and CLI print them).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from symbiotic_assets.core.config import load_settings

SNAPSHOT_NAME = "warehouse.duckdb"
UNKNOWN = "unknown"
POOLED = "(all repositories)"


class SnapshotMissingError(FileNotFoundError):
    """No published snapshot yet: the publish asset has not run."""


def published_snapshot_path() -> Path:
    return load_settings().published_dir / SNAPSHOT_NAME


@contextmanager
def open_snapshot(snapshot: str | Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-only connection whose default catalog is the snapshot."""
    path = Path(snapshot).expanduser() if snapshot else published_snapshot_path()
    if not path.is_file():
        raise SnapshotMissingError(
            f"no published snapshot at {path}; materialize serving/published_warehouse "
            "(job analytics_refresh) first"
        )
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        escaped = path.resolve().as_posix().replace("'", "''")
        con.execute(f"ATTACH '{escaped}' AS warehouse (READ_ONLY)")
        con.execute("USE warehouse")
        yield con
    finally:
        con.close()


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description or []]
    return [{n: _jsonable(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _window(days_back: int, as_of: dt.datetime | dt.date | None) -> tuple[dt.date, dt.date]:
    if days_back < 1:
        raise ValueError(f"days_back must be at least 1, got {days_back}")
    if as_of is None:
        end = dt.datetime.now(dt.UTC).date()
    elif isinstance(as_of, dt.datetime):
        end = (as_of.astimezone(dt.UTC) if as_of.tzinfo else as_of).date()
    else:
        end = as_of
    return end - dt.timedelta(days=days_back - 1), end


def _resolve(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def get_git_velocity_dashboard(
    project_paths: Sequence[str | Path] | None = None,
    *,
    days_back: int = 30,
    as_of: dt.datetime | dt.date | None = None,
    snapshot: str | Path | None = None,
) -> dict[str, Any]:
    """Velocity, branch switching and conflict rate per repository over the last days.

    ``project_paths`` are repository paths (or partition names); None means every
    repository. Velocity counts reachable commits by UTC author date, merges apart and
    included; branch switches are "unknown" for repositories without a reflog.
    """
    since, until = _window(days_back, as_of)
    with open_snapshot(snapshot) as con:
        repos = _rows(
            con,
            "SELECT repository, repository_path, has_reflog FROM marts.dim_repository_health "
            "ORDER BY repository",
        )
        unknown: list[str] = []
        if project_paths:
            wanted: list[dict] = []
            for raw in project_paths:
                match = [
                    r
                    for r in repos
                    if r["repository_path"] == _resolve(raw) or r["repository"] == str(raw)
                ]
                if not match:
                    unknown.append(str(raw))
                wanted.extend(m for m in match if m not in wanted)
            repos = wanted
        names = [r["repository"] for r in repos]
        velocity = _rows(
            con,
            """
            SELECT repository, commit_date, commits, non_merge_commits, merge_commits
            FROM marts.fct_commit_velocity_daily
            WHERE commit_date BETWEEN ? AND ? AND list_contains(?, repository)
            ORDER BY repository, commit_date
            """,
            [since, until, names],
        )
        switches = dict(
            con.execute(
                """
                SELECT repository, sum(branch_switches) FROM marts.fct_branch_switches_daily
                WHERE has_reflog AND switch_date BETWEEN ? AND ? GROUP BY repository
                """,
                [since, until],
            ).fetchall()
        )
        conflicts = {
            r["repository"]: r
            for r in _rows(
                con,
                """
                SELECT repository, sum(two_parent_merges) AS two_parent_merges,
                       sum(conflicting_merges) AS conflicting_merges
                FROM marts.fct_merge_conflicts_daily
                WHERE merge_date BETWEEN ? AND ? GROUP BY repository
                """,
                [since, until],
            )
        }
    out = []
    for repo in repos:
        name = repo["repository"]
        daily = [
            {k: v for k, v in row.items() if k != "repository"}
            for row in velocity
            if row["repository"] == name
        ]
        commits = sum(d["commits"] for d in daily)
        non_merge = sum(d["non_merge_commits"] for d in daily)
        merges = conflicts.get(name, {})
        two_parent = int(merges.get("two_parent_merges") or 0)
        conflicting = int(merges.get("conflicting_merges") or 0)
        if repo["has_reflog"]:
            n_switches: int | str = int(switches.get(name) or 0)
            per_day: float | str = n_switches / days_back  # type: ignore[operator]
        else:
            n_switches = per_day = UNKNOWN
        out.append(
            {
                "repository": name,
                "repository_path": repo["repository_path"],
                "commits": commits,
                "non_merge_commits": non_merge,
                "merge_commits": commits - non_merge,
                "commits_per_day": commits / days_back,
                "non_merge_commits_per_day": non_merge / days_back,
                "active_days": sum(1 for d in daily if d["commits"] > 0),
                "branch_switches": n_switches,
                "branch_switches_per_day": per_day,
                "two_parent_merges": two_parent,
                "conflicting_merges": conflicting,
                "merge_conflict_rate": conflicting / two_parent if two_parent else None,
                "daily": [d for d in daily if d["commits"] > 0],
            }
        )
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "days": days_back,
        "repositories": out,
        "unknown_paths": unknown,
    }


def _repository_name(con: duckdb.DuckDBPyConnection, repository: str | Path) -> str:
    """The partition name of a repository given by name or path, or a LookupError naming it."""
    if not str(repository).strip():
        raise ValueError("repository: empty; pass a repository name or path")
    found = con.execute(
        "SELECT repository FROM git.repositories WHERE repository = ? OR repository_path = ?",
        [str(repository), _resolve(repository)],
    ).fetchall()
    if not found:
        known = [r[0] for r in con.execute("SELECT repository FROM git.repositories").fetchall()]
        raise LookupError(
            f"repository {str(repository)!r} is not in the published snapshot "
            f"(known: {', '.join(sorted(known)) or 'none'}); is it configured and has "
            "analytics_refresh run since it was added?"
        )
    return str(found[0][0])


def get_velocity(
    repository: str | Path,
    days_back: int = 30,
    *,
    as_of: dt.datetime | dt.date | None = None,
    snapshot: str | Path | None = None,
) -> float:
    """Average commits per day over the ``days_back`` UTC days ending at ``as_of`` (today).

    Reads marts.fct_commit_velocity_daily, the one definition of commit velocity: each
    commit reachable from any ref counted once, by its author date in UTC, merges
    included; days without commits count as 0. ``repository`` is a name or a path.
    """
    if isinstance(days_back, bool) or not isinstance(days_back, int) or days_back < 1:
        raise ValueError(f"days_back: must be an integer >= 1, got {days_back!r}")
    since, until = _window(days_back, as_of)
    with open_snapshot(snapshot) as con:
        name = _repository_name(con, repository)
        row = con.execute(
            "SELECT coalesce(sum(commits), 0) FROM marts.fct_commit_velocity_daily "
            "WHERE repository = ? AND commit_date BETWEEN ? AND ?",
            [name, since, until],
        ).fetchone()
    return (int(row[0]) if row else 0) / days_back


def get_repository_health(
    repo_path: str | Path, *, snapshot: str | Path | None = None
) -> dict[str, Any]:
    """The repository's row of dim_repository_health (by path or partition name)."""
    with open_snapshot(snapshot) as con:
        name = _repository_name(con, repo_path)
        rows = _rows(con, "SELECT * FROM marts.dim_repository_health WHERE repository = ?", [name])
    if not rows:
        raise LookupError(
            f"repository {str(repo_path)!r} has no row in marts.dim_repository_health yet; "
            "run analytics_refresh"
        )
    return rows[0]


def get_cross_project_patterns(
    days_back: int = 90,
    *,
    as_of: dt.datetime | dt.date | None = None,
    snapshot: str | Path | None = None,
) -> dict[str, Any]:
    """When people commit (author's local weekday x hour) and whether conflicts follow speed.

    The correlation and the issue patterns are the marts' own definitions
    (fct_conflict_velocity_correlation, fct_cross_project_issue_patterns), evaluated for
    the window through the table macros the dbt build stores next to them.
    """
    since, until = _window(days_back, as_of)
    with open_snapshot(snapshot) as con:
        heatmap = _rows(
            con,
            """
            SELECT weekday_local AS weekday, any_value(weekday_name) AS weekday_name,
                   hour_local AS hour, sum(commits)::BIGINT AS commits,
                   count(DISTINCT repository) AS repositories
            FROM marts.fct_cross_project_patterns
            WHERE activity_date BETWEEN ? AND ?
            GROUP BY ALL ORDER BY weekday, hour
            """,
            [since, until],
        )
        by_repository = _rows(
            con,
            """
            WITH w AS (
                SELECT * FROM marts.fct_cross_project_patterns WHERE activity_date BETWEEN ? AND ?
            ), cells AS (
                SELECT repository, weekday_local, hour_local, sum(commits) AS commits
                FROM w GROUP BY ALL
            )
            SELECT repository,
                   sum(commits)::BIGINT AS commits,
                   arg_max(weekday_local, commits) AS peak_weekday,
                   arg_max(hour_local, commits) AS peak_hour,
                   sum(commits) FILTER (WHERE weekday_local >= 6) / sum(commits) AS weekend_share,
                   sum(commits) FILTER (WHERE hour_local < 8 OR hour_local >= 19) / sum(commits)
                       AS after_hours_share
            FROM cells GROUP BY repository ORDER BY repository
            """,
            [since, until],
        )
        # the marts' own definitions (table macros the dbt build stores), for this window
        correlation = _rows(
            con,
            "SELECT repository, merge_days, mean_daily_conflict_rate, mean_commits_7d, "
            "conflict_velocity_correlation FROM marts.conflict_velocity_between(?, ?) "
            "ORDER BY is_pooled, repository",
            [since, until],
        )
        patterns = "marts.issue_patterns_between(?, ?)"
        issue_types = _rows(
            con,
            f"""
            SELECT issue_type, any_value(issue_attempts) AS attempts,
                   any_value(issue_failures) AS failures, any_value(issue_projects) AS projects,
                   any_value(issue_project_names) AS project_names
            FROM {patterns} GROUP BY issue_type
            ORDER BY projects DESC, attempts DESC, issue_type
            """,
            [since, until],
        )
        failing = _rows(
            con,
            f"""
            SELECT issue_type, agent_strategy, attempts, failures, failure_rate,
                   smoothed_failure_rate, failing_projects
            FROM {patterns} WHERE failures > 0
            ORDER BY failing_projects DESC, failures DESC, smoothed_failure_rate DESC,
                     issue_type, agent_strategy
            """,
            [since, until],
        )
    busiest = sorted(heatmap, key=lambda c: (-c["commits"], c["weekday"], c["hour"]))[:5]
    pooled = next((r for r in correlation if r["repository"] == POOLED), None)
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "days": days_back,
        "heatmap": heatmap,
        "busiest_slots": busiest,
        "by_repository": by_repository,
        "conflict_velocity": {
            "pooled": pooled,
            "repositories": [r for r in correlation if r["repository"] != POOLED],
        },
        "common_issue_types": issue_types,
        "failing_strategies": failing,
    }


ALL_ISSUE_TYPES = "(all)"


def _issue_type_key(value: str) -> str:
    """The spelling the memory store keeps ("Type-Error" -> "type_error")."""
    return re.sub(r"[\s-]+", "_", value.strip().lower())


def get_strategy_effectiveness(
    issue_type: str | None = None,
    *,
    min_attempts: int = 0,
    snapshot: str | Path | None = None,
) -> dict[str, Any]:
    """Which agent:strategy works, for one issue type or over all of them.

    Rows of marts.fct_strategy_effectiveness, best first by the smoothed success rate
    ((s + 1) / (n + 2): one success in one attempt does not outrank 9 in 10). Failed
    attempts count; deleted attempts do not. ``min_attempts`` drops rarely tried ones.
    """
    scope = ALL_ISSUE_TYPES if issue_type is None else _issue_type_key(issue_type)
    with open_snapshot(snapshot) as con:
        rows = _rows(
            con,
            """
            SELECT agent, strategy, agent_strategy, issue_type, attempts, successes, failures,
                   success_rate, smoothed_success_rate, projects, last_attempted,
                   last_successful, times_shown, times_followed, follow_rate,
                   followed_succeeded, followed_failed, success_rate_when_followed,
                   mean_confidence_when_followed
            FROM marts.fct_strategy_effectiveness
            WHERE issue_type = ? AND attempts >= ?
            ORDER BY smoothed_success_rate DESC, attempts DESC, agent_strategy
            """,
            [scope, min_attempts],
        )
        known = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT issue_type FROM marts.fct_strategy_effectiveness "
                "WHERE NOT is_all_issue_types ORDER BY 1"
            ).fetchall()
        ]
    return {
        "issue_type": scope,
        "strategies": rows,
        "best": rows[0]["agent_strategy"] if rows else None,
        "issue_types": known,
    }


def get_skill_effectiveness(
    project: str | None = None, *, snapshot: str | Path | None = None
) -> dict[str, Any]:
    """How well each skill works overall, or in one project (matched case-insensitively).

    Rows of marts.fct_skill_effectiveness for the context, by effectiveness rank
    (smoothed success rate); ``best_by_language`` and ``best_by_complexity`` name the
    most effective skill of every language and complexity (all projects).
    """
    if project is None:
        context_type, where, params = "overall", "context_type = 'overall'", []
    else:
        context_type = "project"
        where = "context_type = 'project' AND lower(context_value) = lower(trim(?))"
        params = [project]
    with open_snapshot(snapshot) as con:
        skills = _rows(
            con,
            f"""
            SELECT skill, context_value, invocations, invocations_with_outcome, successes,
                   failures, skill_success_rate, smoothed_success_rate, completion_rate,
                   mean_duration_seconds, error_types, last_attempted, last_succeeded,
                   effectiveness_rank
            FROM marts.fct_skill_effectiveness
            WHERE {where}
            ORDER BY effectiveness_rank
            """,
            params,
        )
        best = _rows(
            con,
            """
            SELECT context_type, context_value, skill, smoothed_success_rate,
                   invocations_with_outcome
            FROM marts.fct_skill_effectiveness
            WHERE is_most_effective AND context_type IN ('language', 'complexity')
            ORDER BY context_type, context_value
            """,
        )
    return {
        "context": {"type": context_type, "value": project if project is not None else "(all)"},
        "skills": skills,
        "most_effective_skills": [s["skill"] for s in skills[:3]],
        "best_by_language": {
            b["context_value"]: b["skill"] for b in best if b["context_type"] == "language"
        },
        "best_by_complexity": {
            b["context_value"]: b["skill"] for b in best if b["context_type"] == "complexity"
        },
    }


def get_session_metrics(
    project: str | None = None, *, snapshot: str | Path | None = None
) -> dict[str, Any]:
    """Agent sessions with the git activity of their repository, and what goes with what.

    Rows of marts.fct_session_metrics (oldest first), for one project (matched on the
    session's project or its repository, case-insensitively) or all. ``summary`` holds
    means and the Pearson correlation of quality score with git velocity over the sessions
    that have both (None below 3 such sessions or without variance).
    """
    where, params = "", []
    if project is not None:
        where = "WHERE lower(trim(?)) IN (lower(project), lower(repository))"
        params = [project]
    with open_snapshot(snapshot) as con:
        sessions = _rows(
            con,
            f"""
            SELECT session_id, project, repository, language, session_status, started_at,
                   ended_at, duration_seconds, quality_score, tools_used, window_start,
                   window_end, window_days, window_commits, git_velocity, commits_during_session,
                   window_branch_switches, branch_switch_frequency, branch_switch_data,
                   window_two_parent_merges, merge_conflict_rate, fix_attempts, fix_successes,
                   fix_success_rate, skill_invocations, skill_successes, skill_success_rate
            FROM marts.fct_session_metrics
            {where}
            ORDER BY window_end, session_id
            """,
            params,
        )
        (summary,) = _rows(
            con,
            f"""
            WITH s AS (SELECT * FROM marts.fct_session_metrics {where}),
            pairs AS (
                SELECT quality_score AS q, git_velocity AS v FROM s
                WHERE quality_score IS NOT NULL AND git_velocity IS NOT NULL
            ),
            r AS (
                SELECT count(*) AS n,
                       CASE WHEN count(*) >= 3 AND stddev_pop(q) > 0 AND stddev_pop(v) > 0
                            THEN corr(q, v) END AS c
                FROM pairs
            )
            SELECT count(*) AS sessions,
                   count(*) FILTER (WHERE session_status = 'ended') AS ended_sessions,
                   avg(duration_seconds) AS mean_duration_seconds,
                   avg(quality_score) AS mean_quality_score,
                   coalesce(sum(fix_attempts), 0)::BIGINT AS fix_attempts,
                   coalesce(sum(fix_successes), 0)::BIGINT AS fix_successes,
                   (SELECT n FROM r) AS sessions_with_quality_and_velocity,
                   (SELECT c FROM r) AS quality_velocity_correlation
            FROM s
            """,
            params,
        )
    return {"project": project, "sessions": sessions, "summary": summary}
