"""Dashboards as code: writes grafana/dashboards/*.json from the definitions below.

Run ``python grafana/build_dashboards.py`` (or ``make dashboards``) after editing; the
JSON files are committed so that Grafana's file provisioning can load them, and
tests/integration/test_grafana_dashboards.py runs every panel's SQL against a snapshot.

Panel SQL targets the published snapshot (schema ``marts``) through the DuckDB plugin,
whose macros are Grafana's SQL defaults: ``$__timeFilter(col)`` becomes
``col >= '<from RFC3339>' AND col <= '<to RFC3339>'``. ``${repository:singlequote}``
expands to the selected repositories, quoted and comma-separated.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "motherduck-duckdb-datasource", "uid": "symbiotic-duckdb"}
FORMAT_TIME_SERIES = 0  # sqlds query formats
FORMAT_TABLE = 1
OUT_DIR = Path(__file__).resolve().parent / "dashboards"
REPOS = "repository IN (${repository:singlequote})"


@dataclass
class Panel:
    title: str
    kind: str  # timeseries | table | stat | bargauge | barchart
    sql: str
    width: int = 12
    height: int = 8
    description: str = ""
    unit: str | None = None
    fmt: int = FORMAT_TABLE
    options: dict[str, Any] = field(default_factory=dict)
    field_config: dict[str, Any] = field(default_factory=dict)


def _sql(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def heatmap_sql() -> str:
    hours = ",\n  ".join(
        f'coalesce(sum(commits) FILTER (WHERE hour_local = {h}), 0)::BIGINT AS "{h:02d}"'
        for h in range(24)
    )
    return _sql(f"""
SELECT
  weekday_local AS weekday,
  any_value(weekday_name) AS day,
  {hours}
FROM marts.fct_cross_project_patterns
WHERE $__timeFilter(day_start) AND {REPOS}
GROUP BY weekday_local
ORDER BY weekday_local
""")


def ecosystem_panels() -> list[Panel]:
    return [
        Panel(
            "Commits in range",
            "stat",
            width=6,
            height=5,
            description="Reachable commits (merges included) authored in the time range, UTC.",
            sql=_sql(f"""
SELECT coalesce(sum(commits), 0)::BIGINT AS commits,
       coalesce(sum(non_merge_commits), 0)::BIGINT AS non_merge_commits,
       coalesce(sum(merge_commits), 0)::BIGINT AS merge_commits
FROM marts.fct_commit_velocity_daily
WHERE $__timeFilter(day_start) AND {REPOS}
"""),
        ),
        Panel(
            "Merge conflict rate in range",
            "stat",
            width=6,
            height=5,
            unit="percentunit",
            description="Conflicting / judged two-parent merges over the whole range "
            "(re-merged with git merge-tree). Octopus and undetermined merges excluded.",
            sql=_sql(f"""
SELECT sum(conflicting_merges)::DOUBLE / nullif(sum(two_parent_merges), 0) AS conflict_rate
FROM marts.fct_merge_conflicts_daily
WHERE $__timeFilter(day_start) AND {REPOS}
"""),
        ),
        Panel(
            "Branch switches in range",
            "stat",
            width=6,
            height=5,
            description="HEAD reflog checkouts from A to B, A <> B, in repositories with a reflog.",
            sql=_sql(f"""
SELECT coalesce(sum(branch_switches), 0)::BIGINT AS branch_switches
FROM marts.fct_branch_switches_daily
WHERE has_reflog AND $__timeFilter(day_start) AND {REPOS}
"""),
        ),
        Panel(
            "Repositories without reflog (switches unknown)",
            "stat",
            width=6,
            height=5,
            description="Branch switches are unknown, not zero, where git keeps no reflog "
            "(bare mirrors, fresh clones, expired reflogs).",
            sql=_sql(f"""
SELECT count(*) FILTER (WHERE NOT has_reflog)::BIGINT AS without_reflog,
       count(*)::BIGINT AS repositories
FROM marts.dim_repository_health
WHERE {REPOS}
"""),
        ),
        Panel(
            "Commit velocity per repository (commits per day, merges included)",
            "timeseries",
            fmt=FORMAT_TIME_SERIES,
            width=12,
            description="Reachable commits per UTC day by author date; 0 on quiet days.",
            sql=_sql(f"""
SELECT day_start AS time, repository, commits
FROM marts.fct_commit_velocity_daily
WHERE $__timeFilter(day_start) AND {REPOS}
ORDER BY time, repository
"""),
        ),
        Panel(
            "Velocity without merges, 7-day average",
            "timeseries",
            fmt=FORMAT_TIME_SERIES,
            width=12,
            description="Non-merge commits per day, mean over the day and the six before it.",
            sql=_sql(f"""
SELECT day_start AS time, repository, non_merge_commits_7d_avg
FROM marts.fct_commit_velocity_daily
WHERE $__timeFilter(day_start) AND {REPOS}
ORDER BY time, repository
"""),
        ),
        Panel(
            "Merge commits per day",
            "timeseries",
            fmt=FORMAT_TIME_SERIES,
            width=8,
            sql=_sql(f"""
SELECT day_start AS time, repository, merge_commits
FROM marts.fct_commit_velocity_daily
WHERE $__timeFilter(day_start) AND {REPOS}
ORDER BY time, repository
"""),
        ),
        Panel(
            "Branch switches per day",
            "timeseries",
            fmt=FORMAT_TIME_SERIES,
            width=8,
            description="Repositories without a reflog have no series here (unknown, not 0).",
            sql=_sql(f"""
SELECT day_start AS time, repository, branch_switches
FROM marts.fct_branch_switches_daily
WHERE has_reflog AND $__timeFilter(day_start) AND {REPOS}
ORDER BY time, repository
"""),
        ),
        Panel(
            "Merge conflict rate per day",
            "timeseries",
            fmt=FORMAT_TIME_SERIES,
            width=8,
            unit="percentunit",
            description="Only days with judged two-parent merges have a point.",
            sql=_sql(f"""
SELECT day_start AS time, repository, conflict_rate
FROM marts.fct_merge_conflicts_daily
WHERE two_parent_merges > 0 AND $__timeFilter(day_start) AND {REPOS}
ORDER BY time, repository
"""),
        ),
        Panel(
            "Repository health",
            "table",
            width=24,
            height=8,
            description="As of the last analytics run. Score 0-100; formula in docs/metrics.md.",
            sql=_sql(f"""
SELECT repository, health_score, days_since_last_commit, stale_branches,
       unmerged_branches, bus_factor, commits_last_window, velocity_trend,
       conflict_rate, merges_last_window,
       CASE WHEN has_reflog THEN 'reflog' ELSE 'unknown' END AS branch_switch_data,
       last_commit_at
FROM marts.dim_repository_health
WHERE {REPOS}
ORDER BY health_score DESC
"""),
            field_config={
                "overrides": [
                    {
                        "matcher": {"id": "byName", "options": "health_score"},
                        "properties": [
                            {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                            {"id": "min", "value": 0},
                            {"id": "max", "value": 100},
                            {"id": "color", "value": {"mode": "continuous-RdYlGr"}},
                        ],
                    }
                ],
            },
        ),
        Panel(
            "Cross-project activity (author's local weekday x hour)",
            "table",
            width=24,
            height=9,
            description="Non-merge commits in the range, all selected repositories, by the "
            "author's own clock. Darker = busier.",
            sql=heatmap_sql(),
            field_config={
                "defaults": {
                    "custom": {"cellOptions": {"type": "color-background", "mode": "gradient"}},
                    "color": {"mode": "continuous-BlPu"},
                }
            },
        ),
        Panel(
            "Conflicts vs velocity per repository (in range)",
            "table",
            width=24,
            height=7,
            description="Per repository: judged merges and conflict rate in the range, "
            "non-merge commits per day, and the all-history correlation between daily "
            "conflict rate and 7-day velocity (NULL below 3 merge days).",
            sql=_sql(f"""
WITH v AS (
  SELECT repository, sum(non_merge_commits)::DOUBLE / count(*) AS non_merge_commits_per_day
  FROM marts.fct_commit_velocity_daily
  WHERE $__timeFilter(day_start) AND {REPOS}
  GROUP BY repository
), m AS (
  SELECT repository, sum(two_parent_merges)::BIGINT AS two_parent_merges,
         sum(conflicting_merges)::DOUBLE / nullif(sum(two_parent_merges), 0) AS conflict_rate
  FROM marts.fct_merge_conflicts_daily
  WHERE $__timeFilter(day_start) AND {REPOS}
  GROUP BY repository
)
SELECT v.repository, v.non_merge_commits_per_day, coalesce(m.two_parent_merges, 0) AS two_parent_merges,
       m.conflict_rate, c.conflict_velocity_correlation
FROM v
LEFT JOIN m USING (repository)
LEFT JOIN marts.fct_conflict_velocity_correlation c USING (repository)
ORDER BY v.repository
"""),
        ),
    ]


def agents_panels() -> list[Panel]:
    """Sessions, skills, strategies and recommendation confidence (the memory marts).

    Sessions and skills follow the repository variable (a session's project is matched to
    the repository of that name); strategies and calibration span every project.
    """
    return [
        Panel(
            "Agent sessions in range",
            "stat",
            width=6,
            height=5,
            description="Sessions of the selected repositories that started in the range; "
            "mean quality score over the ended sessions that reported one.",
            sql=_sql(f"""
SELECT count(*)::BIGINT AS sessions,
       count(*) FILTER (WHERE session_status = 'ended')::BIGINT AS ended,
       avg(quality_score)::DOUBLE AS mean_quality_score
FROM marts.fct_session_metrics
WHERE $__timeFilter(day_start) AND {REPOS}
"""),
        ),
        Panel(
            "Fix attempt success rate",
            "stat",
            width=6,
            height=5,
            unit="percentunit",
            description="Successful / all fix attempts (failures count; deleted attempts do "
            "not), every agent and strategy, all time.",
            sql=_sql("""
SELECT sum(successes)::DOUBLE / nullif(sum(attempts), 0) AS success_rate,
       sum(attempts)::BIGINT AS attempts
FROM marts.fct_strategy_effectiveness
WHERE is_all_issue_types
"""),
        ),
        Panel(
            "Followed recommendations that succeeded",
            "stat",
            width=6,
            height=5,
            unit="percentunit",
            description="Among followed recommendations whose outcome is known, the share "
            "that succeeded; all time.",
            sql=_sql("""
SELECT sum(followed_succeeded)::DOUBLE
         / nullif(sum(followed_succeeded + followed_failed), 0) AS success_when_followed,
       sum(times_followed)::BIGINT AS followed
FROM marts.fct_strategy_effectiveness
WHERE is_all_issue_types
"""),
        ),
        Panel(
            "Confidence calibration error",
            "stat",
            width=6,
            height=5,
            unit="percentunit",
            description="Expected calibration error: over followed recommendations with a "
            "known outcome, the mean |observed success rate - mean confidence| of their "
            "0.1-wide confidence bins, weighted by count. 0 = perfectly calibrated.",
            sql=_sql("""
SELECT (sum(followed_with_outcome * abs(observed_success_rate - mean_confidence))
         / nullif(sum(followed_with_outcome), 0))::DOUBLE AS calibration_error,
       coalesce(sum(followed_with_outcome), 0)::BIGINT AS judged_recommendations
FROM marts.fct_recommendation_calibration
"""),
        ),
        Panel(
            "Session quality and project velocity",
            "timeseries",
            fmt=FORMAT_TIME_SERIES,
            width=12,
            description="Per ended session (at its start): quality score (0-100) and the git "
            "velocity of its repository over the 30 days before it ended (commits per day).",
            sql=_sql(f"""
SELECT started_at AS time, repository, quality_score, git_velocity
FROM marts.fct_session_metrics
WHERE session_status = 'ended' AND $__timeFilter(day_start) AND {REPOS}
ORDER BY time, repository
"""),
            options={"tooltip": {"mode": "multi"}},
            field_config={"defaults": {"custom": {"drawStyle": "points", "pointSize": 8}}},
        ),
        Panel(
            "Strategy success rate (all issue types)",
            "barchart",
            width=12,
            unit="percentunit",
            description="Per agent:strategy: successes / attempts, and the smoothed rate "
            "(s + 1) / (n + 2) that ranks them (1 of 1 is 67%, not 100%).",
            sql=_sql("""
SELECT agent_strategy, success_rate, smoothed_success_rate
FROM marts.fct_strategy_effectiveness
WHERE is_all_issue_types AND attempts > 0
ORDER BY smoothed_success_rate DESC, agent_strategy
"""),
            options={"xField": "agent_strategy", "orientation": "horizontal"},
            field_config={"defaults": {"min": 0, "max": 1}},
        ),
        Panel(
            "Agent sessions",
            "table",
            width=24,
            height=8,
            description="One row per session of the selected repositories. Git figures cover "
            "the 30 days before the session ended; branch switches are unknown (empty) "
            "without a reflog; definitions in docs/metrics.md.",
            sql=_sql(f"""
SELECT session_id, project, repository, session_status, started_at,
       round(duration_seconds / 3600.0, 2) AS duration_hours, quality_score, git_velocity,
       branch_switch_frequency, branch_switch_data, merge_conflict_rate, fix_attempts,
       fix_success_rate, skill_invocations, skill_success_rate,
       array_to_string(tools_used, ', ') AS tools_used
FROM marts.fct_session_metrics
WHERE $__timeFilter(day_start) AND {REPOS}
ORDER BY started_at DESC, session_id
"""),
        ),
        Panel(
            "Skill effectiveness (selected repositories)",
            "table",
            width=12,
            height=8,
            description="Invocations of each skill in the selected repositories' projects "
            "(project = repository name, case-insensitive), "
            "all time. Success rate over invocations with a known outcome (not completed = "
            "failed); smoothed = (s + 1) / (n + 2).",
            sql=_sql("""
SELECT skill, sum(invocations)::BIGINT AS invocations, sum(successes)::BIGINT AS successes,
       sum(failures)::BIGINT AS failures,
       sum(successes)::DOUBLE / nullif(sum(invocations_with_outcome), 0) AS skill_success_rate,
       (sum(successes) + 1.0) / (sum(invocations_with_outcome) + 2.0) AS smoothed_success_rate,
       max(last_attempted) AS last_attempted
FROM marts.fct_skill_effectiveness
WHERE context_type = 'project'
  AND list_contains(list_transform([${repository:singlequote}], r -> lower(r)), lower(context_value))
GROUP BY skill
ORDER BY smoothed_success_rate DESC, skill
"""),
        ),
        Panel(
            "Most effective skills per context",
            "table",
            width=12,
            height=8,
            description="Best skills (smoothed success rate) per project, language and "
            "complexity, all time.",
            sql=_sql("""
SELECT context_type, context_value, skill AS most_effective_skill, smoothed_success_rate,
       invocations_with_outcome, array_to_string(most_effective_skills, ', ') AS top_skills
FROM marts.fct_skill_effectiveness
WHERE is_most_effective
ORDER BY context_type, context_value
"""),
        ),
        Panel(
            "Strategy effectiveness per issue type",
            "table",
            width=24,
            height=9,
            description="Fix attempts per agent:strategy and issue type (failures count, "
            "deleted attempts do not), and what happened to its recommendations.",
            sql=_sql("""
SELECT issue_type, agent_strategy, attempts, successes, failures, success_rate,
       smoothed_success_rate, times_shown, times_followed, success_rate_when_followed,
       last_attempted, last_successful
FROM marts.fct_strategy_effectiveness
WHERE NOT is_all_issue_types
ORDER BY issue_type, smoothed_success_rate DESC, agent_strategy
"""),
        ),
        Panel(
            "Recommendation confidence vs observed success",
            "barchart",
            width=12,
            height=8,
            unit="percentunit",
            description="Per 0.1 confidence bin: mean confidence given and the observed "
            "success rate of followed recommendations with a known outcome. Calibrated: "
            "the bars match.",
            sql=_sql("""
SELECT bin_label, mean_confidence, observed_success_rate, followed_with_outcome
FROM marts.fct_recommendation_calibration
WHERE followed_with_outcome > 0
ORDER BY confidence_bin
"""),
            options={"xField": "bin_label"},
            field_config={
                "overrides": [
                    {
                        "matcher": {"id": "byName", "options": "followed_with_outcome"},
                        "properties": [
                            {
                                "id": "custom.hideFrom",
                                "value": {"viz": True, "legend": True, "tooltip": False},
                            }
                        ],
                    }
                ]
            },
        ),
        Panel(
            "Common issue types and failing strategies across projects",
            "table",
            width=12,
            height=8,
            description="Issue types met in the selected repositories' projects (all time), "
            "with the agent:strategy that failed most on each and where it failed.",
            sql=_sql("""
SELECT issue_type, issue_projects, issue_attempts, issue_failures,
       agent_strategy AS most_failing_strategy, failures, failure_rate,
       array_to_string(failing_project_names, ', ') AS failing_in
FROM marts.fct_cross_project_issue_patterns
WHERE failing_rank = 1
  AND list_has_any(list_transform(issue_project_names, p -> lower(p)),
                   list_transform([${repository:singlequote}], r -> lower(r)))
ORDER BY issue_type_rank, issue_type
"""),
        ),
    ]


def _layout(panels: list[Panel]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    x = y = row_h = 0
    for pid, p in enumerate(panels, start=1):
        if x + p.width > 24:
            x, y, row_h = 0, y + row_h, 0
        defaults: dict[str, Any] = dict(p.field_config.get("defaults", {}))
        if p.unit:
            defaults["unit"] = p.unit
        out.append({
            "id": pid,
            "type": p.kind,
            "title": p.title,
            "description": p.description,
            "datasource": dict(DATASOURCE),
            "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": p.field_config.get("overrides", [])},
            "options": p.options,
            "targets": [{
                "refId": "A",
                "datasource": dict(DATASOURCE),
                "rawSql": p.sql,
                "format": p.fmt,
                "rawQuery": True,
                "editorMode": "code",
            }],
        })  # fmt: skip
        x += p.width
        row_h = max(row_h, p.height)
    return out


def repository_variable() -> dict[str, Any]:
    query = "SELECT repository FROM marts.dim_repository_health ORDER BY repository"
    return {
        "name": "repository",
        "label": "Repository",
        "type": "query",
        "datasource": dict(DATASOURCE),
        "definition": query,
        "query": query,
        "refresh": 1,
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "sort": 1,
        "regex": "",
    }


def dashboard(uid: str, title: str, panels: list[Panel], description: str) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["symbiotic", "git", "agents"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "",
        "time": {"from": "now-90d", "to": "now"},
        "timepicker": {"refresh_intervals": ["5m", "1h", "1d"]},
        "templating": {"list": [repository_variable()]},
        "annotations": {"list": []},
        "links": [],
        "panels": _layout(panels),
    }


def dashboards() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON."""
    return {
        "Symbiotic-Ecosystem.json": dashboard(
            "symbiotic-ecosystem",
            "Symbiotic Ecosystem",
            ecosystem_panels() + agents_panels(),
            "Velocity, branch switching, merge conflicts, repository health and when people "
            "work, across every repository Symbiotic reads; agent sessions, skills, fix "
            "strategies and recommendation confidence. Data: the published snapshot.",
        ),
    }


def write_dashboards(out_dir: Path = OUT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, board in dashboards().items():
        path = out_dir / name
        path.write_text(json.dumps(board, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR
    for written_path in write_dashboards(target):
        print(written_path)
