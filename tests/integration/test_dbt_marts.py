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
