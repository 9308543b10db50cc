"""dbt marts on fixture repositories, checked against figures worked out by hand.

The fixture (tests/analytics_repos.py) is built with git, extracted by the real git
assets' functions, transformed by a real `dbt build` run through dagster-dbt, and
published; every expected number below follows from the dates in its docstring.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from analytics_repos import PublishedFixture, build_published_fixture

from symbiotic_assets.analytics import api

pytestmark = pytest.mark.slow
D = dt.date


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> PublishedFixture:
    return build_published_fixture(tmp_path_factory.mktemp("analytics"))


@pytest.fixture(scope="module")
def con(published: PublishedFixture):
    c = duckdb.connect(str(published.snapshot), read_only=True)
    yield c
    c.close()


def test_every_model_materialized_through_dagster(published: PublishedFixture) -> None:
    marts = {k.split("/", 1)[1] for k in published.materialized_keys if k.startswith("analytics/")}
    assert {"fct_commit_velocity_daily", "dim_repository_health", "stg_git__commits"} <= marts
    assert "serving/published_warehouse" in published.materialized_keys


def test_velocity_counts_reachable_commits_by_utc_author_day(con) -> None:
    rows = con.execute(
        "SELECT repository, commit_date, commits, non_merge_commits, merge_commits "
        "FROM marts.fct_commit_velocity_daily WHERE commits > 0 ORDER BY 1, 2"
    ).fetchall()
    assert rows == [
        ("alpha", D(2024, 1, 15), 1, 1, 0),
        ("alpha", D(2024, 1, 20), 1, 1, 0),
        ("alpha", D(2024, 3, 4), 1, 1, 0),
        ("alpha", D(2024, 3, 5), 2, 1, 1),
        ("alpha", D(2024, 3, 6), 2, 2, 0),
        ("alpha", D(2024, 3, 7), 2, 1, 1),
        ("alpha", D(2024, 3, 28), 1, 1, 0),
        # b1 was written on 03-04 at 22:00 -0800: 03-05 in UTC
        ("beta", D(2024, 3, 5), 3, 3, 0),
        ("beta", D(2024, 3, 6), 2, 1, 1),
        # b6 (03-21) was reset away: stored, unreachable, not counted
        ("beta", D(2024, 3, 20), 1, 1, 0),
    ]
    spine = dict(
        con.execute(
            "SELECT repository, count(*) FROM marts.fct_commit_velocity_daily GROUP BY 1"
        ).fetchall()
    )
    assert spine == {"alpha": 17 + 29 + 28, "beta": 16}  # every day, 0 on quiet ones
    avg = con.execute(
        "SELECT commits_7d_avg FROM marts.fct_commit_velocity_daily "
        "WHERE repository = 'alpha' AND commit_date = '2024-03-07'"
    ).fetchone()[0]
    assert avg == pytest.approx(7 / 7)  # 03-01..03-07: 0+0+0+1+2+2+2


def test_branch_switches_known_where_reflog_unknown_where_not(con) -> None:
    alpha = con.execute(
        "SELECT switch_date, branch_switches, checkouts FROM marts.fct_branch_switches_daily "
        "WHERE repository = 'alpha' AND checkouts > 0 ORDER BY 1"
    ).fetchall()
    assert alpha == [
        (D(2024, 1, 20), 2, 2),
        (D(2024, 3, 4), 2, 2),
        (D(2024, 3, 6), 2, 3),  # main -> main is a checkout, not a switch
        (D(2024, 3, 28), 2, 2),
    ]
    total, days = con.execute(
        "SELECT sum(branch_switches), count(*) FROM marts.fct_branch_switches_daily "
        "WHERE repository = 'alpha'"
    ).fetchone()
    assert (total, days) == (8, 74)
    beta = con.execute(
        "SELECT count(*), count(branch_switches), min(switch_data), max(switch_data) "
        "FROM marts.fct_branch_switches_daily WHERE repository = 'beta'"
    ).fetchone()
    assert beta == (16, 0, "unknown", "unknown")  # unknown, never 0


def test_conflict_rate_uses_judged_two_parent_merges(con) -> None:
    rows = con.execute(
        "SELECT repository, merge_date, two_parent_merges, conflicting_merges, conflict_rate, "
        "conflicted_paths FROM marts.fct_merge_conflicts_daily ORDER BY 1, 2"
    ).fetchall()
    assert rows == [
        ("alpha", D(2024, 3, 5), 1, 0, 0.0, 0),
        ("alpha", D(2024, 3, 7), 1, 1, 1.0, 1),
        ("beta", D(2024, 3, 6), 1, 0, 0.0, 0),
    ]


def _expected_score(days: float, last: int, prev: int, stale: int, unmerged: int, bus: int,
                    merges: int, conflicts: int) -> float:  # fmt: skip
    terms = [
        (0.20, 2 ** (-days / 30)),
        (0.15, last / (last + 10)),
        (0.10, (last + 1) / (last + prev + 2)),
        (0.15, 3 / (3 + stale)),
        (0.10, 10 / (10 + unmerged)),
        (0.15, bus / (bus + 1)),
        (0.15, 1 - (conflicts + 0.2) / (merges + 2)),
    ]
    return round(100 * sum(w * t for w, t in terms), 2)


def test_repository_health_by_hand(con) -> None:
    cols = (
        "repository, days_since_last_commit, branches, unmerged_branches, stale_branches, "
        "stale_branch_names, bus_factor, active_authors, commits_last_window, "
        "commits_previous_window, conflict_rate, merges_last_window, conflicts_last_window, "
        "health_score"
    )
    rows = {
        r[0]: r for r in con.execute(f"SELECT {cols} FROM marts.dim_repository_health").fetchall()
    }
    alpha, beta = rows["alpha"], rows["beta"]
    # last commit a8 2024-03-28 10:00 -> AS_OF 2024-04-01 00:00 = 3 days 14 hours
    assert alpha[1] == pytest.approx(3 + 14 / 24)
    assert alpha[2:6] == (4, 2, 1, ["stale-idea"])  # fresh-wip is unmerged but 4 days old
    assert alpha[6:8] == (1, 2)  # Alice wrote 5 of 8 human commits: more than half alone
    assert alpha[8:10] == (6, 0)  # a3..a8 in the last 30 days, nothing in the 30 before
    assert alpha[10:13] == (0.5, 2, 1)
    assert alpha[13] == _expected_score(3 + 14 / 24, 6, 0, 1, 2, 1, 2, 1)
    assert beta[1] == pytest.approx(11 + 15 / 24)  # b5 2024-03-20 09:00
    assert beta[2:6] == (1, 0, 0, [])
    assert beta[6:8] == (2, 3)  # Dave 2, Erin 2, Frank 1 (b6 unreachable): two are needed
    assert beta[8:10] == (5, 0)
    assert beta[13] == _expected_score(11 + 15 / 24, 5, 0, 0, 0, 2, 1, 0)
    assert alpha[13] != beta[13] and 0 < min(alpha[13], beta[13]) < 100


def test_health_terms_do_not_saturate() -> None:
    """Each term keeps moving where a capped formula would have stopped."""
    far = [_expected_score(0, n, 0, 0, 0, 1, 0, 0) for n in (50, 100, 200)]
    assert far[0] < far[1] < far[2] < 100
    stale = [_expected_score(0, 5, 5, s, s, 2, 10, 1) for s in (10, 20, 40)]
    assert stale[0] > stale[1] > stale[2] > 0


def test_cross_project_patterns_use_the_authors_clock(con) -> None:
    b1 = con.execute(
        "SELECT activity_date, weekday_local, weekday_name, hour_local FROM "
        "marts.fct_cross_project_patterns WHERE repository = 'beta' AND hour_local = 22"
    ).fetchall()
    assert b1 == [(D(2024, 3, 5), 1, "Monday", 22)]  # Monday evening in -0800
    a4 = con.execute(
        "SELECT weekday_local, hour_local, commits FROM marts.fct_cross_project_patterns "
        "WHERE repository = 'alpha' AND activity_date = '2024-03-05'"
    ).fetchall()
    assert a4 == [(2, 9, 1)]  # 14:00 UTC = 09:00 -0500; the merge m1 is not counted
    total = con.execute("SELECT sum(commits) FROM marts.fct_cross_project_patterns").fetchone()[0]
    assert total == 8 + 5  # non-merge reachable commits of both repositories


def test_conflict_velocity_correlation_by_hand(con) -> None:
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT repository, merge_days, mean_commits_7d, conflict_velocity_correlation "
            "FROM marts.fct_conflict_velocity_correlation"
        ).fetchall()
    }
    # merge days: alpha 03-05 (rate 0, 2 commits in 7d), alpha 03-07 (rate 1, 5), beta 03-06 (0, 4)
    assert rows["alpha"][:2] == (2, 3.5) and rows["alpha"][2] is None  # < 3 days
    x, y = [2, 5, 4], [0, 1, 0]
    mx, my = sum(x) / 3, sum(y) / 3
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    r = cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))
    assert rows["(all repositories)"][0] == 3
    assert rows["(all repositories)"][2] == pytest.approx(r)


def test_api_reads_the_snapshot(published: PublishedFixture) -> None:
    alpha_path = published.fixture.spec("alpha").path
    board = api.get_git_velocity_dashboard(
        [alpha_path, "beta", "/no/such/repository"], days_back=30, as_of=D(2024, 3, 31),
        snapshot=published.snapshot,
    )  # fmt: skip
    by_name = {r["repository"]: r for r in board["repositories"]}
    assert board["unknown_paths"] == ["/no/such/repository"]
    assert (by_name["alpha"]["commits"], by_name["alpha"]["merge_commits"]) == (8, 2)
    assert by_name["alpha"]["branch_switches"] == 6  # 03-04, 03-06, 03-28
    assert by_name["alpha"]["merge_conflict_rate"] == 0.5
    assert by_name["beta"]["branch_switches"] == "unknown"
    assert by_name["beta"]["commits_per_day"] == pytest.approx(6 / 30)
    json.dumps(board)  # JSON-ready for the MCP server and the CLI

    health = api.get_repository_health(alpha_path, snapshot=published.snapshot)
    assert health["repository"] == "alpha" and health["stale_branches"] == 1
    with pytest.raises(LookupError, match="not in the published snapshot"):
        api.get_repository_health("/no/such/repository", snapshot=published.snapshot)

    patterns = api.get_cross_project_patterns(90, as_of=D(2024, 3, 31), snapshot=published.snapshot)
    assert sum(c["commits"] for c in patterns["heatmap"]) == 8 + 5
    assert patterns["conflict_velocity"]["pooled"]["merge_days"] == 3
    short = api.get_cross_project_patterns(7, as_of=D(2024, 3, 31), snapshot=published.snapshot)
    assert sum(c["commits"] for c in short["heatmap"]) == 1  # only a8 (03-28) in 03-25..03-31
    with pytest.raises(FileNotFoundError, match="no published snapshot"):
        api.get_repository_health("alpha", snapshot=published.home / "missing.duckdb")


def test_translator_maps_git_sources_to_git_assets(published: PublishedFixture) -> None:
    import dagster as dg

    from symbiotic_assets.analytics.assets import MART_MODELS, build_dbt_assets
    from symbiotic_assets.analytics.project import MANIFEST_PATH

    assets_def = build_dbt_assets()
    deps = {k for keys in assets_def.asset_deps.values() for k in keys}
    for table in ("repositories", "commits", "refs", "ref_events", "merges"):
        assert dg.AssetKey(["git", table]) in deps
    manifest = json.loads(Path(MANIFEST_PATH).read_text())
    marts = sorted(
        n["name"] for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["fqn"][1] == "marts"
    )  # fmt: skip
    assert tuple(marts) == MART_MODELS  # the publish asset waits for every mart
    assert all(dg.AssetKey(["analytics", m]) in assets_def.keys for m in MART_MODELS)


def test_importing_the_code_is_cheap() -> None:
    code = (
        "import sys, symbiotic_assets.analytics.definitions, symbiotic_assets.analytics.api, "
        "symbiotic_assets.serving.definitions; "
        "assert 'dagster_dbt' not in sys.modules and 'dbt' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- memory marts: the events recorded in tests/analytics_repos.py (record_memory_events) --

S = dt.datetime


def test_strategy_effectiveness_counts_failures_and_smooths(con) -> None:
    rows = {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            "SELECT agent_strategy, issue_type, attempts, successes, failures, success_rate, "
            "smoothed_success_rate, last_attempted, last_successful "
            "FROM marts.fct_strategy_effectiveness"
        ).fetchall()
    }
    # #1 ok, #2 ok, #3 failed; #4 (ok) was deleted and must not count: 2 of 3, not 3 of 4
    sec = rows[("SecurityAgent:security_fix", "security")]
    assert sec[:3] == (3, 2, 1)
    assert sec[3] == pytest.approx(2 / 3) and sec[4] == pytest.approx((2 + 1) / (3 + 2))
    assert sec[5:] == (S(2024, 3, 20, 9), S(2024, 3, 7, 11))  # #4 at 10:00 is gone
    # 1 of 1 is not 100%: (1 + 1) / (1 + 2)
    assert rows[("FormattingAgent:format", "formatting")][3:5] == (1.0, pytest.approx(2 / 3))
    complexity = rows[("RefactoringAgent:refactor", "complexity")]
    assert complexity[:5] == (2, 0, 2, 0.0, pytest.approx(1 / 4))
    assert complexity[6] is None  # never succeeded
    refactor_all = rows[("RefactoringAgent:refactor", "(all)")]
    assert refactor_all[:4] == (3, 1, 2, pytest.approx(1 / 3))
    assert refactor_all[4] == pytest.approx(2 / 5)
    assert len(rows) == 4 + 3  # four (strategy, issue type) pairs + three '(all)' rows


def test_strategy_feedback_shown_followed_succeeded(con) -> None:
    rows = {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            "SELECT agent_strategy, issue_type, times_shown, times_followed, followed_succeeded, "
            "followed_failed, success_rate_when_followed, mean_confidence_when_followed "
            "FROM marts.fct_strategy_effectiveness"
        ).fetchall()
    }
    # r1 followed ok, r2 followed failed, r3 and r8 shown only
    assert rows[("SecurityAgent:security_fix", "security")] == (
        4,
        2,
        1,
        1,
        0.5,
        pytest.approx(0.835),
    )
    # r4 ok, r7 followed with unknown outcome (not a failure), r9 shown only
    assert rows[("FormattingAgent:format", "formatting")][:5] == (3, 2, 1, 0, 1.0)
    # r6 named only fix attempt #8: agent, strategy and issue type come from the attempt
    assert rows[("RefactoringAgent:refactor", "type_error")][:5] == (1, 1, 1, 0, 1.0)
    assert rows[("RefactoringAgent:refactor", "(all)")][:5] == (2, 2, 1, 1, 0.5)


def test_recommendation_calibration_bins(con) -> None:
    rows = con.execute(
        "SELECT confidence_bin, bin_lower, recommendations, followed, followed_with_outcome, "
        "followed_succeeded, mean_confidence, observed_success_rate, mean_confidence_all "
        "FROM marts.fct_recommendation_calibration ORDER BY confidence_bin"
    ).fetchall()
    assert [r[:6] for r in rows] == [
        (3, 0.3, 2, 2, 2, 1),  # r6 0.30 ok (0.3 lands in bin 3, not 2), r5 0.35 failed
        (8, 0.8, 3, 2, 2, 1),  # r1 0.85 ok, r2 0.82 failed, r3 0.80 not followed
        (9, 0.9, 3, 2, 1, 1),  # r4 0.95 ok, r7 0.91 unknown, r8 1.00 (last bin) not followed
    ]  # r9 has no confidence: in no bin
    assert [r[6] for r in rows] == pytest.approx([0.325, 0.835, 0.95])
    assert [r[7] for r in rows] == [0.5, 0.5, 1.0]
    assert rows[2][8] == pytest.approx((0.95 + 0.91 + 1.0) / 3)


def test_skill_effectiveness_by_context(con) -> None:
    rows = {
        (r[0], r[1], r[2]): r[3:]
        for r in con.execute(
            "SELECT context_type, context_value, skill, invocations, invocations_with_outcome, "
            "successes, skill_success_rate, smoothed_success_rate, last_attempted, "
            "effectiveness_rank, most_effective_skills FROM marts.fct_skill_effectiveness"
        ).fetchall()
    }
    # pytest-runner: ok, ok, failed, and one completed with no outcome (out of the rate)
    runner = rows[("overall", "(all)", "pytest-runner")]
    assert runner[:3] == (4, 3, 2)
    assert runner[3] == pytest.approx(2 / 3) and runner[4] == pytest.approx(3 / 5)
    assert runner[5] == S(2024, 3, 20, 11)
    # refactor-planner: ok, and one that never completed (a failure)
    assert rows[("overall", "(all)", "refactor-planner")][:5] == (2, 2, 1, 0.5, 0.5)
    # doc-writer 1/1 -> 2/3 ranks above pytest-runner 2/3 -> 3/5 overall ...
    assert rows[("overall", "(all)", "doc-writer")][6:] == (
        1, ["doc-writer", "pytest-runner", "refactor-planner"])  # fmt: skip
    # ... but in alpha refactor-planner (1/1 -> 2/3) beats pytest-runner (2/3 -> 3/5)
    assert rows[("project", "alpha", "refactor-planner")][6] == 1
    assert rows[("project", "alpha", "pytest-runner")][:3] == (3, 3, 2)
    assert rows[("project", "beta", "pytest-runner")][3:5] == (None, 0.5)  # no known outcome
    assert rows[("complexity", "high", "refactor-planner")][:3] == (2, 2, 1)
    assert rows[("language", "markdown", "doc-writer")][6] == 1


def test_session_metrics_join_the_projects_repository(con) -> None:
    cols = (
        "session_id, repository, session_status, started_at, duration_seconds, tools_used, "
        "window_commits, git_velocity, window_branch_switches, branch_switch_frequency, "
        "branch_switch_data, window_two_parent_merges, merge_conflict_rate, "
        "commits_during_session, fix_attempts, fix_success_rate, skill_invocations, "
        "skill_success_rate"
    )
    rows = {
        r[0]: r[1:] for r in con.execute(f"SELECT {cols} FROM marts.fct_session_metrics").fetchall()
    }
    assert set(rows) == {"s-alpha-1", "s-beta-1", "s-gamma", "s-open"}
    # s-alpha-1 ended 03-07 17:00; window 02-06 17:00 .. 03-07 17:00 of alpha:
    # a3 a4 m1 a5 a6 m2 a7 = 7 commits; switches 03-04 x2, 03-06 x2; merges m1 clean, m2 conflict
    a = rows["s-alpha-1"]
    assert a[:5] == ("alpha", "ended", S(2024, 3, 7, 9), 28800.0, ["mypy", "pytest", "ruff"])
    assert a[5:7] == (7, pytest.approx(7 / 30))
    assert a[7:10] == (4, pytest.approx(4 / 30), "reflog")
    assert a[10:12] == (2, 0.5)
    assert a[12] == 2  # m2 10:00 and a7 12:00 between 09:00 and 17:00
    assert a[13:] == (4, 0.75, 4, 0.75)  # #1 #2 #5 ok, #6 failed; skills 3 ok of 4 judged
    # "Beta" is the repository beta; no end duration sent: 08:00 -> 12:00 = 4 h
    b = rows["s-beta-1"]
    assert b[:2] == ("beta", "ended") and b[3] == 4 * 3600.0
    assert b[5:7] == (6, pytest.approx(6 / 30))  # b1..b5 and m3; b6 is unreachable
    assert b[7:10] == (None, None, "unknown")  # no reflog: unknown, not 0
    assert b[10:12] == (1, 0.0)
    assert b[13:] == (2, 0.0, 3, 0.5)  # #3, #7 failed (#4 deleted); skills: 1 ok of 2 judged
    # an open session measures the window ending at its start: a8 (10:00) is after 09:30
    o = rows["s-open"]
    assert (o[1], o[5], o[7], o[12]) == ("open", 7, 5, None)  # + the 03-28 09:00 switch
    g = rows["s-gamma"]  # no repository called gamma: the session stays, git figures NULL
    assert g[0] is None and g[2] == S(2024, 3, 15, 10) and g[5:8] == (None, None, None)


def test_cross_project_issue_patterns(con) -> None:
    rows = {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            "SELECT issue_type, agent_strategy, issue_projects, issue_attempts, issue_type_rank, "
            "failures, failure_rate, smoothed_failure_rate, failing_project_names, failing_rank "
            "FROM marts.fct_cross_project_issue_patterns"
        ).fetchall()
    }
    assert rows[("security", "SecurityAgent:security_fix")] == (
        2, 3, 1, 1, pytest.approx(1 / 3), pytest.approx(2 / 5), ["beta"], 1)  # fmt: skip
    assert rows[("complexity", "RefactoringAgent:refactor")] == (
        2, 2, 2, 2, 1.0, 0.75, ["alpha", "beta"], 1)  # fmt: skip
    assert rows[("type_error", "RefactoringAgent:refactor")][:3] == (1, 1, 3)


def test_memory_sources_are_the_memory_assets(published: PublishedFixture) -> None:
    import dagster as dg

    from symbiotic_assets.analytics.assets import build_dbt_assets

    assert {"memory/fix_attempts", "memory/events"} <= published.materialized_keys
    deps = {k for keys in build_dbt_assets().asset_deps.values() for k in keys}
    for table in ("fix_attempts", "recommendation_feedback", "events"):
        assert dg.AssetKey(["memory", table]) in deps


def test_memory_api_reads_the_snapshot(published: PublishedFixture) -> None:
    snap = published.snapshot
    security = api.get_strategy_effectiveness("Security", snapshot=snap)
    assert security["issue_type"] == "security"
    (row,) = security["strategies"]
    assert (row["attempts"], row["successes"], row["times_followed"]) == (3, 2, 2)
    overall = api.get_strategy_effectiveness(snapshot=snap)
    assert [s["agent_strategy"] for s in overall["strategies"]] == [
        "FormattingAgent:format",  # 2/3 smoothed
        "SecurityAgent:security_fix",  # 3/5
        "RefactoringAgent:refactor",  # 2/5
    ]
    assert overall["issue_types"] == ["complexity", "formatting", "security", "type_error"]
    assert api.get_strategy_effectiveness("dependency", snapshot=snap)["strategies"] == []

    skills = api.get_skill_effectiveness(snapshot=snap)
    assert skills["most_effective_skills"] == ["doc-writer", "pytest-runner", "refactor-planner"]
    assert skills["best_by_language"] == {"markdown": "doc-writer", "python": "pytest-runner"}
    alpha = api.get_skill_effectiveness("Alpha", snapshot=snap)
    assert [s["skill"] for s in alpha["skills"]] == ["refactor-planner", "pytest-runner"]

    beta = api.get_session_metrics("beta", snapshot=snap)
    assert [s["session_id"] for s in beta["sessions"]] == ["s-beta-1"]
    assert beta["sessions"][0]["branch_switch_frequency"] is None
    everything = api.get_session_metrics(snapshot=snap)
    assert everything["summary"]["sessions"] == 4
    assert everything["summary"]["mean_quality_score"] == pytest.approx((85 + 70 + 60) / 3)
    assert everything["summary"]["quality_velocity_correlation"] is None  # 2 pairs only
    json.dumps([security, skills, everything])

    patterns = api.get_cross_project_patterns(14, as_of=D(2024, 3, 31), snapshot=snap)
    assert {(p["issue_type"], p["attempts"]) for p in patterns["common_issue_types"]} == {
        ("security", 1), ("complexity", 1)}  # fmt: skip  # only #3 and #7 (03-20) in 03-18..03-31
    wide = api.get_cross_project_patterns(90, as_of=D(2024, 3, 31), snapshot=snap)
    assert wide["failing_strategies"][0]["agent_strategy"] == "RefactoringAgent:refactor"
    assert wide["failing_strategies"][0]["failing_projects"] == 2
