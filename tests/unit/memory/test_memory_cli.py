"""``record`` and ``import`` mounted exactly as the main CLI mounts them."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from memory_records import attempt
from typer.testing import CliRunner

from symbiotic_assets.events.store import MemoryStore
from symbiotic_assets.memory.cli import import_command, record_app

app = typer.Typer()
app.add_typer(record_app, name="record")
app.command("import")(import_command)

runner = CliRunner()

FIX = [
    "record", "fix-attempt",
    "--issue-type", "security",
    "--message", "Possible SQL injection via string-based query construction",
    "--file-path", "src/auth/sql_query.py",
    "--line-number", "42",
    "--stage", "bandit",
    "--agent", "SecurityAgent",
    "--strategy", "security_fix",
    "--success",
    "--session-id", "sess-1",
    "--project", "billing",
    "--language", "Python",
    "--timestamp", "2025-03-01T10:00:00Z",
]  # fmt: skip


def test_record_fix_attempt_and_retry(tmp_path: Path):
    db = tmp_path / "m.sqlite"
    first = runner.invoke(app, [*FIX, "--store", str(db)])
    assert first.exit_code == 0, first.output
    assert "recorded fix attempt 1" in first.output
    retry = runner.invoke(app, [*FIX, "--store", str(db)])
    assert retry.exit_code == 0
    assert "already recorded" in retry.output
    with MemoryStore(db) as store:
        (row,) = store.list_fix_attempts()
    assert (row.line_number, row.language, row.success) == (42, "python", True)


def test_record_with_key_prints_only_the_id_when_quiet(tmp_path: Path):
    db = tmp_path / "m.sqlite"
    args = [*FIX, "--failure", "--idempotency-key", "ci-77", "--store", str(db), "-q"]
    out = runner.invoke(app, args)
    assert out.exit_code == 0 and out.output.strip() == "1"
    out = runner.invoke(app, [*args[:-1], "--message", "other text", "-q"])
    assert out.output.strip() == "1"
    with MemoryStore(db) as store:
        (row,) = store.list_fix_attempts()
    assert row.success is False and row.idempotency_key == "ci-77"


def test_invalid_option_names_the_field_and_exits_2(tmp_path: Path):
    db = tmp_path / "m.sqlite"
    out = runner.invoke(app, [*FIX, "--line-number", "-3", "--store", str(db)])
    assert out.exit_code == 2
    assert "fix_attempt.line_number" in out.output
    out = runner.invoke(app, [*FIX, "--timestamp", "2025-03-01 10:00", "--store", str(db)])
    assert out.exit_code == 2
    assert "fix_attempt.timestamp: needs a UTC offset" in out.output
    with MemoryStore(db) as store:
        assert store.count("fix_attempts") == 0


def test_record_feedback(tmp_path: Path):
    db = tmp_path / "m.sqlite"
    out = runner.invoke(
        app,
        ["record", "feedback", "--recommendation-id", "rec-9", "--followed",
         "--outcome", "failed", "--confidence", "0.65", "--agent", "DRYAgent",
         "--strategy", "dry_refactor", "--store", str(db)],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    with MemoryStore(db) as store:
        (fb,) = store.list_feedback()
    assert (fb.recommendation_id, fb.followed, fb.outcome, fb.confidence) == (
        "rec-9",
        True,
        "failed",
        0.65,
    )
    out = runner.invoke(
        app,
        ["record", "feedback", "--recommendation-id", "r", "--confidence", "2", "--store", str(db)],
    )
    assert out.exit_code == 2 and "feedback.confidence" in out.output


def test_import_reports_counts_and_quarantine(tmp_path: Path):
    db = tmp_path / "m.sqlite"
    src = tmp_path / "batch.jsonl"
    src.write_text(
        "\n".join(
            [
                json.dumps(attempt(1)),
                "{oops",
                json.dumps(attempt(2)),
                json.dumps(attempt(3, agent="")),
            ]
        )
        + "\n"
    )
    out = runner.invoke(app, ["import", str(src), "--store", str(db)])
    assert out.exit_code == 0, out.output
    assert "2 line(s) quarantined" in out.output
    assert "line 2: invalid JSON" in out.output
    assert "line 4: fix_attempt.agent: must not be empty" in out.output
    strict = runner.invoke(app, ["import", str(src), "--store", str(db), "--strict"])
    assert strict.exit_code == 1
    with MemoryStore(db) as store:
        assert store.count("fix_attempts") == 2
        assert store.count("quarantine") == 2


def test_default_store_is_under_symbiotic_home(symbiotic_home: Path):
    out = runner.invoke(app, FIX)
    assert out.exit_code == 0, out.output
    assert (symbiotic_home / "memory.sqlite").is_file()


SESSION_END = [
    "record", "session",
    "--session-id", "sess-7",
    "--phase", "end",
    "--project", "billing",
    "--language", "Python",
    "--duration-seconds", "5400",
    "--quality-score", "87.5",
    "--tool", "ruff",
    "--tool", "mypy",
    "--timestamp", "2025-03-01T12:00:00+01:00",
]  # fmt: skip


def test_record_session_events_and_retry(tmp_path: Path):
    db = tmp_path / "m.sqlite"
    start = runner.invoke(
        app,
        ["record", "session", "--session-id", "sess-7", "--phase", "start",
         "--project", "billing", "--timestamp", "2025-03-01T09:30:00Z", "--store", str(db)],
    )  # fmt: skip
    assert start.exit_code == 0, start.output
    assert "recorded session event 1" in start.output
    end = runner.invoke(app, [*SESSION_END, "--store", str(db)])
    assert end.exit_code == 0 and "recorded session event 2" in end.output
    retry = runner.invoke(app, [*SESSION_END, "--store", str(db)])
    assert retry.exit_code == 0 and "already recorded" in retry.output
    with MemoryStore(db) as store:
        events = sorted(store.list_events("session"), key=lambda e: e.timestamp)
    assert [e.payload["phase"] for e in events] == ["start", "end"]
    parsed = events[1].parsed()
    assert parsed.session_id == "sess-7" and parsed.tools_used == ["ruff", "mypy"]
    assert (parsed.duration_seconds, parsed.quality_score) == (5400.0, 87.5)
    assert parsed.timestamp.isoformat() == "2025-03-01T11:00:00+00:00"  # +01:00 -> UTC
    assert "tools_used" not in events[0].payload or events[0].payload["tools_used"] == []


def test_record_session_refuses_bad_input(tmp_path: Path):
    db = tmp_path / "m.sqlite"
    out = runner.invoke(
        app, ["record", "session", "--session-id", "s", "--phase", "middle", "--store", str(db)]
    )
    assert out.exit_code == 2 and "session.phase" in out.output
    out = runner.invoke(
        app,
        ["record", "session", "--session-id", "s", "--phase", "start",
         "--duration-seconds", "10", "--store", str(db)],
    )  # fmt: skip
    assert out.exit_code == 2 and "session.duration_seconds" in out.output
    out = runner.invoke(app, [*SESSION_END, "--quality-score", "101", "--store", str(db)])
    assert out.exit_code == 2 and "session.quality_score" in out.output
    with MemoryStore(db) as store:
        assert store.count("events") == 0


def test_record_skill_invocation_outcomes(tmp_path: Path):
    db = tmp_path / "m.sqlite"
    base = ["record", "skill", "--skill", "pytest-runner", "--session-id", "sess-7",
            "--project", "billing", "--language", "python", "--complexity", "low",
            "--store", str(db)]  # fmt: skip
    ok = runner.invoke(
        app,
        [
            *base,
            "--completed",
            "--succeeded",
            "--duration-seconds",
            "12.5",
            "--timestamp",
            "2025-03-01T10:00:00Z",
        ],  # fmt: skip
    )
    assert ok.exit_code == 0, ok.output
    assert "recorded skill invocation 1" in ok.output
    unknown = runner.invoke(
        app, [*base, "--completed", "--timestamp", "2025-03-01T10:05:00Z", "-q"]
    )
    assert unknown.exit_code == 0 and unknown.output.strip() == "2"
    timeout = runner.invoke(
        app,
        [
            *base,
            "--not-completed",
            "--error-type",
            "timeout",
            "--timestamp",
            "2025-03-01T10:10:00Z",
        ],  # fmt: skip
    )
    assert timeout.exit_code == 0, timeout.output
    with MemoryStore(db) as store:
        events = sorted(store.list_events("skill_invocation"), key=lambda e: e.timestamp)
        parsed = [e.parsed() for e in events]
    assert [(p.completed, p.succeeded, p.error_type) for p in parsed] == [
        (True, True, None),
        (True, None, None),  # outcome not known yet: neither success nor failure
        (False, None, "timeout"),
    ]
    assert parsed[0].duration_seconds == 12.5 and parsed[0].complexity == "low"


def test_record_skill_success_needs_completion(tmp_path: Path):
    db = tmp_path / "m.sqlite"
    out = runner.invoke(
        app,
        ["record", "skill", "--skill", "x", "--not-completed", "--succeeded", "--store", str(db)],
    )
    assert out.exit_code == 2
    assert "skill_invocation.succeeded" in out.output
    with MemoryStore(db) as store:
        assert store.count("events") == 0
