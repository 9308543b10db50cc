"""`symbiotic mcp` as a coding agent meets it: a real subprocess over stdio, the SDK's client.

The home is built by `symbiotic import` + `symbiotic run` on fixture repositories whose
figures are known (tests/ecosystem.py); every answer below follows from that docstring.
One conversation makes all the calls (the server starts once, the model loads once);
the tests then check one tool each.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from ecosystem import AS_OF, WINDOW_DAYS, Ecosystem, build_ecosystem, converse, text_of

pytestmark = pytest.mark.slow

TOOLS = {
    "git_metrics_collector",
    "semantic_search",
    "strategy_recommender",
    "skill_tracker",
    "cross_project_analytics",
    "record_fix_attempt",
    "record_recommendation_feedback",
    "record_search_click",
}
WINDOW = {"days_back": WINDOW_DAYS, "as_of": AS_OF}
RETRY_QUERY = "where did we change the retry backoff"
GOOD_ATTEMPT = {
    "issue_type": "security",
    "message": "B105 hardcoded password in settings.py",
    "stage": "bandit",
    "agent": "SecurityAgent",
    "strategy": "security_fix",
    "success": True,
    "file_path": "src/settings.py",
    "line_number": 12,
    "project": "standard",
    "timestamp": "2024-03-30T10:00:00Z",
    "idempotency_key": "e2e-attempt-1",
}

CALLS: list[tuple[str, str, dict]] = [
    ("metrics_standard", "git_metrics_collector", {"repository": "standard", **WINDOW}),
    ("metrics_beta", "git_metrics_collector", {"repository": "beta", **WINDOW}),
    ("metrics_path", "git_metrics_collector", {"repository": "../etc"}),
    ("metrics_option", "git_metrics_collector", {"repository": "--upload-pack=evil"}),
    ("metrics_unknown", "git_metrics_collector", {"repository": "nope"}),
    ("metrics_bad_as_of", "git_metrics_collector", {"repository": "beta", "as_of": "soon"}),
    ("search", "semantic_search", {"query": RETRY_QUERY, "k": 3}),
    (
        "search_carol",
        "semantic_search",
        {"query": "merge", "k": 20, "authors": ["carol"], "include_merges": True, "record": False},
    ),
    ("search_k0", "semantic_search", {"query": RETRY_QUERY, "k": 0}),
    ("search_since", "semantic_search", {"query": RETRY_QUERY, "since": "yesterday-ish"}),
    ("search_repo", "semantic_search", {"query": RETRY_QUERY, "repositories": ["gamma"]}),
    (
        "recommend",
        "strategy_recommender",
        {
            "issue_type": "security",
            "stage": "bandit",
            "message": "B105 hardcoded password",
            "file_path": "src/settings.py",
        },
    ),
    ("recommend_bad", "strategy_recommender", {"issue_type": "no such!", "message": "x"}),
    (
        "skill_record",
        "skill_tracker",
        {
            "action": "record",
            "skill": "pytest-runner",
            "project": "standard",
            "completed": True,
            "succeeded": False,
            "idempotency_key": "e2e-skill-1",
            "timestamp": "2024-03-30T09:00:00Z",
        },
    ),
    (
        "skill_record_bad",
        "skill_tracker",
        {"action": "record", "skill": "pytest-runner", "completed": False, "succeeded": True},
    ),
    (
        "skill_query",
        "skill_tracker",
        {"action": "query", "skill": "pytest-runner", "project": "standard"},
    ),
    ("cross", "cross_project_analytics", WINDOW),
    ("cross_bad", "cross_project_analytics", {"days_back": 0}),
    ("attempt", "record_fix_attempt", GOOD_ATTEMPT),
    ("attempt_again", "record_fix_attempt", GOOD_ATTEMPT),
    (
        "attempt_bad_agent",
        "record_fix_attempt",
        {**GOOD_ATTEMPT, "agent": "rm -rf /", "idempotency_key": None},
    ),
    (
        "attempt_naive_time",
        "record_fix_attempt",
        {**GOOD_ATTEMPT, "timestamp": "2024-03-30T10:00:00", "idempotency_key": None},
    ),
    (
        "feedback",
        "record_recommendation_feedback",
        {"recommendation_id": "r-e2e", "followed": True, "outcome": "succeeded", "confidence": 0.7},
    ),
    (
        "feedback_bad",
        "record_recommendation_feedback",
        {"recommendation_id": "r-e2e-2", "shown": False, "followed": True},
    ),
    (
        "feedback_conf",
        "record_recommendation_feedback",
        {"recommendation_id": "r-e2e-3", "confidence": 1.5},
    ),
    # values that crashed the tools with a bare "Error executing tool X" before
    (
        "attempt_year_1",
        "record_fix_attempt",
        {**GOOD_ATTEMPT, "timestamp": "0001-01-01T00:00:00+01:00", "idempotency_key": None},
    ),
    (
        "feedback_huge_id",
        "record_recommendation_feedback",
        {"recommendation_id": "r-e2e-4", "fix_attempt_id": 10**20},
    ),
    (
        "search_since_9999",
        "semantic_search",
        {"query": RETRY_QUERY, "since": "9999-12-31T23:59:59-01:00"},
    ),
    ("cross_as_of_9999", "cross_project_analytics", {"days_back": 30, "as_of": "9999-12-31"}),
    (
        "click_huge_rank",
        "record_search_click",
        {"query": "q", "clicked_hash": "ab12", "rank": 10**20},
    ),
]


@pytest.fixture(scope="module")
def eco(tmp_path_factory: pytest.TempPathFactory) -> Ecosystem:
    return build_ecosystem(tmp_path_factory.mktemp("mcp"))


@pytest.fixture(scope="module")
def answers(eco: Ecosystem) -> dict[str, Any]:
    out = converse(eco, CALLS)
    search = out["search"]
    if not search.is_error and search.structured_content["search_id"]:
        top = search.structured_content["results"][0]
        click = {"query": RETRY_QUERY, "clicked_hash": top["hash"], "rank": 1,
                 "search_id": search.structured_content["search_id"]}  # fmt: skip
        out.update(converse(eco, [("click", "record_search_click", click),
                                  ("click_again", "record_search_click", click)]))  # fmt: skip
    return out


def ok(answers: dict[str, Any], label: str) -> dict[str, Any]:
    result = answers[label]
    assert not result.is_error, f"{label}: {text_of(result)}"
    return result.structured_content


def error(answers: dict[str, Any], label: str) -> str:
    result = answers[label]
    assert result.is_error, f"{label} should have failed: {text_of(result)}"
    return text_of(result)


def test_lists_every_tool_with_described_inputs(answers: dict[str, Any]) -> None:
    tools = {t.name: t for t in answers["tools"]}
    assert set(tools) == TOOLS
    search = tools["semantic_search"].input_schema
    assert search["required"] == ["query"]
    assert search["properties"]["k"]["minimum"] == 1 and search["properties"]["k"]["maximum"] == 100
    for name in ("query", "k", "repositories", "authors", "since", "until", "paths"):
        assert search["properties"][name].get("description"), name
    assert tools["git_metrics_collector"].input_schema["required"] == ["repository"]
    assert tools["skill_tracker"].input_schema["properties"]["action"]["enum"] == [
        "record",
        "query",
    ]
    for tool in tools.values():
        assert tool.description and len(tool.description) > 40, tool.name


def test_git_metrics_of_a_repository_with_a_reflog(answers: dict[str, Any]) -> None:
    m = ok(answers, "metrics_standard")
    assert m["window"] == {"since": "2024-03-01", "until": AS_OF, "days": WINDOW_DAYS}
    assert (m["commits"], m["merge_commits"], m["non_merge_commits"]) == (10, 2, 8)
    assert m["commits_per_day"] == pytest.approx(10 / 31)
    assert m["has_reflog"] is True and m["branch_switches"] == 6
    assert (m["two_parent_merges"], m["conflicting_merges"]) == (2, 1)
    assert m["merge_conflict_rate"] == 0.5
    assert m["health"]["stale_branch_names"] == ["stale-idea"]
    assert 0 <= m["health"]["score"] <= 100
    assert [d["commit_date"] for d in m["daily"]] == [f"2024-03-0{d}" for d in range(1, 6)]


def test_branch_switches_unknown_without_reflog(answers: dict[str, Any]) -> None:
    m = ok(answers, "metrics_beta")
    assert m["commits"] == 7 and m["merge_conflict_rate"] == 0.0
    assert m["has_reflog"] is False
    assert m["branch_switches"] == "unknown" and m["branch_switches_per_day"] == "unknown"


def test_repository_must_be_a_configured_name(answers: dict[str, Any]) -> None:
    assert "repository='../etc'" in error(answers, "metrics_path")
    assert "not a repository name" in error(answers, "metrics_option")
    unknown = error(answers, "metrics_unknown")
    assert "repository='nope'" in unknown and "unknown repository" in unknown
    assert "beta" in unknown and "standard" in unknown
    assert "as_of='soon'" in error(answers, "metrics_bad_as_of")


def test_semantic_search_finds_the_commit(eco: Ecosystem, answers: dict[str, Any]) -> None:
    s = ok(answers, "search")
    top = s["results"][0]
    assert top["subject"] == "Add retry backoff"
    assert top["hash"] == eco.commits["c2"] and top["repository"] == "standard"
    assert top["author"].startswith("Bob")
    assert len(s["results"]) <= 3 and s["search_id"]
    carol = ok(answers, "search_carol")["results"]
    assert carol and all("Carol" in r["author"] for r in carol)
    assert any(r["is_merge"] for r in carol)


def test_search_errors_name_the_input(answers: dict[str, Any]) -> None:
    k0 = error(answers, "search_k0")
    assert "\nk\n" in k0 and "greater than or equal to 1" in k0
    assert "since='yesterday-ish'" in error(answers, "search_since")
    assert "gamma" in error(answers, "search_repo")


def test_click_on_a_search_result_is_recorded_once(answers: dict[str, Any]) -> None:
    first, again = ok(answers, "click"), ok(answers, "click_again")
    assert first["created"] is True and again["created"] is False
    assert again["id"] == first["id"]


def test_recommender_favours_what_history_shows(answers: dict[str, Any]) -> None:
    r = ok(answers, "recommend")
    assert (r["agent"], r["strategy"]) == ("SecurityAgent", "security_fix")
    assert 0.5 < r["confidence"] <= 1.0
    assert r["recommendation_id"] and r["evidence"]
    if r["source"] == "fct_strategy_effectiveness":  # until memory/api.py lands
        assert r["confidence"] == pytest.approx(5 / 7, abs=1e-4)
        assert [e["agent_strategy"] for e in r["evidence"]] == [
            "SecurityAgent:security_fix",
            "RefactoringAgent:refactor",
        ]
    assert "issue_type='no such!'" in error(answers, "recommend_bad")


def test_skill_tracker_records_and_queries(answers: dict[str, Any]) -> None:
    recorded = ok(answers, "skill_record")
    assert recorded["created"] is True
    assert "skill_invocation.succeeded" in error(answers, "skill_record_bad")
    q = ok(answers, "skill_query")
    (row,) = q["skills"]
    assert (row["skill"], row["invocations_with_outcome"], row["successes"]) == (
        "pytest-runner",
        4,
        3,
    )
    assert row["smoothed_success_rate"] == pytest.approx((3 + 1) / (4 + 2))
    # the invocation just recorded is in the store, not yet in the marts
    assert q["memory_store"] == {"invocations": 5, "succeeded": 3, "failed": 2}


def test_cross_project_analytics(answers: dict[str, Any]) -> None:
    c = ok(answers, "cross")
    assert c["totals"] == {
        "repositories": 2,
        "commits": 17,
        "commits_per_day": pytest.approx(17 / 31),
        "two_parent_merges": 3,
        "conflicting_merges": 1,
        "merge_conflict_rate": pytest.approx(1 / 3),
    }
    by_name = {r["repository"]: r for r in c["repositories"]}
    assert by_name["standard"]["merge_conflict_rate"] == 0.5
    assert by_name["beta"]["commits"] == 7
    issue_types = {r["issue_type"]: r["attempts"] for r in c["common_issue_types"]}
    assert issue_types == {"security": 9, "formatting": 3}
    failing = {r["agent_strategy"]: r["failures"] for r in c["failing_strategies"]}
    assert failing == {"RefactoringAgent:refactor": 3, "SecurityAgent:security_fix": 1}
    assert "days_back" in error(answers, "cross_bad")


def test_recording_tools_validate_and_deduplicate(answers: dict[str, Any]) -> None:
    first, again = ok(answers, "attempt"), ok(answers, "attempt_again")
    assert first["created"] is True and again["created"] is False and again["id"] == first["id"]
    assert "fix_attempt.agent" in error(answers, "attempt_bad_agent")
    assert "fix_attempt.timestamp" in error(answers, "attempt_naive_time")
    assert ok(answers, "feedback")["created"] is True
    assert "feedback.followed" in error(answers, "feedback_bad")
    assert "confidence" in error(answers, "feedback_conf")


def test_refresh_extracts_new_commits_then_answers(eco: Ecosystem, answers: dict[str, Any]) -> None:
    assert ok(answers, "metrics_beta")["commits"] == 7
    eco.beta.commit("Late fix", "2024-03-25T09:00:00+0000", ("Erin", "erin@example.com"),
                    {"late.txt": "x\n"})  # fmt: skip
    out = converse(eco, [("refresh", "git_metrics_collector",
                          {"repository": "beta", "refresh": True, **WINDOW})])  # fmt: skip
    m = ok(out, "refresh")
    assert m["refresh"]["ran"] is True
    assert m["commits"] == 8 and m["daily"][-1]["commit_date"] == "2024-03-25"


def test_hostile_values_are_refusals_that_name_the_argument(answers: dict[str, Any]) -> None:
    year_1 = error(answers, "attempt_year_1")
    assert "fix_attempt.timestamp: is outside the calendar once converted to UTC" in year_1
    huge = error(answers, "feedback_huge_id")
    assert (
        "feedback.fix_attempt_id: Input should be less than or equal to 9223372036854775807" in huge
    )
    since = error(answers, "search_since_9999")
    assert "since='9999-12-31T23:59:59-01:00': outside the calendar" in since
    assert "as_of='9999-12-31': out of range" in error(answers, "cross_as_of_9999")
    assert "search_click.rank: Input should be less than or equal to 10000" in error(
        answers, "click_huge_rank"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_http_bearer_scheme_is_case_insensitive(tmp_path: Path) -> None:
    """The real `symbiotic mcp --http`: 'bearer', 'BEARER' and 'Bearer' pass; a wrong token does not."""
    token = "e2e-token-0123456789abcdef"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYMBIOTIC_", "DAGSTER_"))}
    env |= {"SYMBIOTIC_HOME": str(tmp_path / "home"), "SYMBIOTIC_MCP_TOKEN": token}
    server = subprocess.Popen(
        [sys.executable, "-m", "symbiotic_assets.mcp", "--http", "--port", str(port)],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "http.log").open("wb"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/mcp"
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "e2e", "version": "1"},
        },
    }

    def post(authorization: str | None) -> int:
        headers = {
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
        }
        if authorization is not None:
            headers["authorization"] = authorization
        request = urllib.request.Request(
            url, data=json.dumps(initialize).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                post(None)
                break
            except urllib.error.URLError as exc:
                assert not isinstance(exc, urllib.error.HTTPError), exc
                assert server.poll() is None, (tmp_path / "http.log").read_text()
                assert time.monotonic() < deadline, "the HTTP server did not start"
                time.sleep(0.2)
        for scheme in ("Bearer", "bearer", "BEARER"):
            assert post(f"{scheme} {token}") == 200, scheme
        assert post(None) == 401
        assert post(f"bearer {token[:-1]}") == 401
        assert post(f"Basic {token}") == 401
    finally:
        server.terminate()
        server.wait(timeout=30)
