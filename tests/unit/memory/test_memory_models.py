"""Validation at the door: what is refused, with which field named, and what is accepted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from memory_records import attempt

from symbiotic_assets.events.models import (
    FixAttempt,
    InvalidRecordError,
    RecommendationFeedback,
    SearchClick,
    SearchEvent,
    SessionEvent,
    SkillInvocation,
    validate_record,
)


def problems(kind: str, data: dict) -> dict[str, str]:
    with pytest.raises(InvalidRecordError) as info:
        validate_record(kind, data)
    assert str(info.value)  # the message is what a CLI user or a quarantine row shows
    return dict(info.value.problems)


def test_valid_attempt_is_normalised():
    rec = validate_record(
        "fix_attempt", attempt(issue_type=" Type-Error ", timestamp="2025-03-01T12:00:00+02:00")
    )
    assert isinstance(rec, FixAttempt)
    assert rec.issue_type == "type_error"
    assert rec.timestamp == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert rec.is_known_issue_type


def test_unknown_issue_type_is_accepted_as_data():
    rec = validate_record("fix_attempt", attempt(issue_type="license_header"))
    assert isinstance(rec, FixAttempt)
    assert rec.issue_type == "license_header"
    assert not rec.is_known_issue_type


def test_unknown_agent_and_strategy_are_accepted():
    rec = validate_record("fix_attempt", attempt(agent="LicenseAgent", strategy="add header"))
    assert isinstance(rec, FixAttempt)
    assert (rec.agent, rec.strategy) == ("LicenseAgent", "add header")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("line_number", -1, "greater than or equal to 0"),
        ("message", "   ", "must not be empty"),
        ("agent", "Security Agent", "agent name"),
        ("issue_type", "sql;drop", "must be a word"),
        ("success", "maybe", "valid boolean"),
        ("timestamp", "2025-03-01T10:00:00", "needs a UTC offset"),
        ("timestamp", "yesterday", "valid datetime"),
        ("stage", "bandit\x00", "control characters"),
    ],
)
def test_invalid_field_is_named_with_the_problem(field: str, value: object, expected: str):
    found = problems("fix_attempt", attempt(**{field: value}))
    assert list(found) == [field]
    assert expected in found[field]


def test_missing_and_misspelt_fields_are_named():
    data = attempt(sucess=True)
    del data["success"]
    del data["agent"]
    found = problems("fix_attempt", data)
    assert found["success"] == "Field required"
    assert found["agent"] == "Field required"
    assert "sucess" in found and "not permitted" in found["sucess"]


def test_error_message_names_kind_field_and_value():
    with pytest.raises(InvalidRecordError) as info:
        validate_record("fix_attempt", attempt(line_number=-7))
    assert "fix_attempt.line_number:" in str(info.value)
    assert "-7" in str(info.value)


def test_unknown_record_type_is_refused():
    found = problems("telemetry", {"x": 1})
    assert "unknown record type 'telemetry'" in found["type"]


def test_feedback_rules():
    fb = validate_record(
        "feedback", {"recommendation_id": "r1", "accepted": True, "outcome": "succeeded"}
    )
    assert isinstance(fb, RecommendationFeedback)
    assert fb.followed and fb.shown
    assert (
        "cannot be followed"
        in problems("feedback", {"recommendation_id": "r1", "shown": False, "followed": True})[
            "followed"
        ]
    )
    assert (
        "less than or equal to 1"
        in problems("feedback", {"recommendation_id": "r1", "confidence": 1.5})["confidence"]
    )
    assert (
        "'succeeded', 'failed' or 'unknown'"
        in problems("feedback", {"recommendation_id": "r1", "outcome": "great"})["outcome"]
    )


def test_event_models_validate_their_own_rules():
    assert (
        "only a session 'end'"
        in problems("session", {"session_id": "s1", "phase": "start", "duration_seconds": 5})[
            "duration_seconds"
        ]
    )
    assert (
        "less than or equal to 100"
        in problems("session", {"session_id": "s1", "phase": "end", "quality_score": 130})[
            "quality_score"
        ]
    )
    skill = validate_record(
        "skill_invocation", {"skill_name": "RefactoringAgent", "completed": True}
    )
    assert isinstance(skill, SkillInvocation) and skill.skill == "RefactoringAgent"
    assert (
        "did not complete"
        in problems("skill_invocation", {"skill": "x", "completed": False, "succeeded": True})[
            "succeeded"
        ]
    )
    assert (
        "hexadecimal"
        in problems("search_click", {"query": "retry", "clicked_hash": "not-a-hash", "rank": 1})[
            "clicked_hash"
        ]
    )
    assert (
        "greater than or equal to 1"
        in problems("search_click", {"query": "retry", "clicked_hash": "abc123", "rank": 0})["rank"]
    )
    click = validate_record("search_click", {"query": "q", "clicked_hash": "ABC123F", "rank": 2})
    assert isinstance(click, SearchClick) and click.clicked_hash == "abc123f"
    search = validate_record("search", {"query": "retry logic", "results_shown": ["a1", "b2"]})
    assert isinstance(search, SearchEvent) and search.results_shown == ["a1", "b2"]
    session = validate_record(
        "session", {"session_id": "s", "phase": "end", "tools_used": ["ruff"]}
    )
    assert isinstance(session, SessionEvent)


def test_content_key_is_deterministic_and_content_sensitive():
    a = FixAttempt.model_validate(attempt(1))
    same_instant = FixAttempt.model_validate(attempt(1, timestamp="2025-03-01T12:01:00+02:00"))
    other = FixAttempt.model_validate(attempt(1, success=False))
    assert a.content_key() == FixAttempt.model_validate(attempt(1)).content_key()
    assert a.content_key() == same_instant.content_key()
    assert a.content_key() != other.content_key()
    assert a.effective_key() == a.content_key()
    keyed = FixAttempt.model_validate(attempt(1, idempotency_key="k-1"))
    assert keyed.effective_key() == "k-1"


def test_content_key_leaves_out_a_timestamp_the_client_did_not_send():
    data = attempt(2)
    del data["timestamp"]
    first = FixAttempt.model_validate(data)
    retry = FixAttempt.model_validate(data)
    assert first.content_key() == retry.content_key()
    sent = FixAttempt.model_validate({**data, "timestamp": first.timestamp})
    assert sent.content_key() != first.content_key()
