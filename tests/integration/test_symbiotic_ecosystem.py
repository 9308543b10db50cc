"""The whole chain on known data: repositories + event log -> import -> run -> every reader.

`symbiotic import` stores the JSON-lines events, `symbiotic run` materializes git, search,
memory, dbt marts and the published snapshot (then the memory_learn job publishes the
recommender), and the Python APIs and the MCP server over stdio must give the figures
worked out by hand in tests/ecosystem.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ecosystem import AS_OF, WINDOW_DAYS, Ecosystem, build_ecosystem, converse

pytestmark = pytest.mark.slow
RETRY_QUERY = "where did we change the retry backoff"


@pytest.fixture(scope="module")
def eco(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ecosystem]:
    built = build_ecosystem(tmp_path_factory.mktemp("ecosystem"))
    mp = pytest.MonkeyPatch()
    for key in ("SYMBIOTIC_HOME", "SYMBIOTIC_CONFIG"):
        mp.setenv(key, built.env[key])
    mp.delenv("SYMBIOTIC_WAREHOUSE", raising=False)
    mp.delenv("SYMBIOTIC_REPOSITORIES", raising=False)
    yield built
    mp.undo()


def test_semantic_search_finds_the_retry_backoff_commit(eco: Ecosystem) -> None:
    from symbiotic_assets.search.api import semantic_search

    results = semantic_search(RETRY_QUERY, k=5)
    assert results[0].subject == "Add retry backoff"
    assert results[0].hash == eco.commits["c2"]
    assert results[0].score > results[1].score


def test_recommender_returns_what_history_favours(eco: Ecosystem) -> None:
    from symbiotic_assets.analytics.api import get_strategy_effectiveness
    from symbiotic_assets.memory.api import recommend_strategy

    mart = get_strategy_effectiveness("security")
    by_name = {r["agent_strategy"]: r for r in mart["strategies"]}
    assert mart["best"] == "SecurityAgent:security_fix"
    assert (by_name["SecurityAgent:security_fix"]["attempts"],
            by_name["SecurityAgent:security_fix"]["successes"]) == (5, 4)  # fmt: skip
    assert by_name["SecurityAgent:security_fix"]["smoothed_success_rate"] == pytest.approx(5 / 7)
    assert by_name["RefactoringAgent:refactor"]["smoothed_success_rate"] == pytest.approx(2 / 6)

    rec = recommend_strategy(
        {"issue_type": "security", "message": "B105 hardcoded password", "stage": "bandit"}
    )
    assert rec.status == "ok", rec.reason
    assert (rec.agent, rec.strategy) == ("SecurityAgent", "security_fix")
    assert 0.5 < rec.confidence <= 1.0
    assert rec.evidence and all(e.issue_type == "security" for e in rec.evidence)


def test_cross_project_figures(eco: Ecosystem) -> None:
    from symbiotic_assets.analytics.api import (
        get_cross_project_patterns,
        get_git_velocity_dashboard,
    )

    dash = get_git_velocity_dashboard(None, days_back=WINDOW_DAYS, as_of=_date(AS_OF))
    repos = {r["repository"]: r for r in dash["repositories"]}
    assert {n: r["commits"] for n, r in repos.items()} == {"standard": 10, "beta": 7}
    assert repos["standard"]["merge_conflict_rate"] == 0.5
    assert repos["beta"]["merge_conflict_rate"] == 0.0
    assert repos["standard"]["branch_switches"] == 6
    assert repos["beta"]["branch_switches"] == "unknown"
    patterns = get_cross_project_patterns(WINDOW_DAYS, as_of=_date(AS_OF))
    # the timing patterns count authored work: non-merge commits, 8 + 6
    assert {r["repository"]: r["commits"] for r in patterns["by_repository"]} == {
        "standard": 8,
        "beta": 6,
    }
    assert {r["issue_type"]: r["attempts"] for r in patterns["common_issue_types"]} == {
        "security": 9,
        "formatting": 3,
    }


def test_mcp_server_answers_the_same(eco: Ecosystem) -> None:
    window = {"days_back": WINDOW_DAYS, "as_of": AS_OF}
    out = converse(
        eco,
        [
            ("search", "semantic_search", {"query": RETRY_QUERY, "k": 3, "record": False}),
            ("recommend", "strategy_recommender",
             {"issue_type": "security", "message": "B105 hardcoded password", "stage": "bandit"}),
            ("cross", "cross_project_analytics", window),
            ("standard", "git_metrics_collector", {"repository": "standard", **window}),
            ("skills", "skill_tracker", {"action": "query"}),
        ],
    )  # fmt: skip
    for label in ("search", "recommend", "cross", "standard", "skills"):
        assert not out[label].is_error, (label, out[label].content)
    search = out["search"].structured_content["results"]
    assert search[0]["hash"] == eco.commits["c2"]
    rec = out["recommend"].structured_content
    assert rec["source"] == "memory recommender"
    assert (rec["agent"], rec["strategy"]) == ("SecurityAgent", "security_fix")
    assert 0.5 < rec["confidence"] <= 1.0
    totals = out["cross"].structured_content["totals"]
    assert (totals["commits"], totals["two_parent_merges"], totals["conflicting_merges"]) == (
        17,
        3,
        1,
    )
    standard = out["standard"].structured_content
    assert standard["merge_conflict_rate"] == 0.5 and standard["commits"] == 10
    skills = {s["skill"]: s for s in out["skills"].structured_content["skills"]}
    assert skills["pytest-runner"]["successes"] == 3
    assert skills["pytest-runner"]["invocations_with_outcome"] == 4
    assert out["skills"].structured_content["most_effective_skills"][0] in skills


def _date(text: str):
    import datetime as dt

    return dt.date.fromisoformat(text)
