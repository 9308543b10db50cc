"""``record`` and ``import`` mounted exactly as the main CLI mounts them."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from memory_records import attempt
from typer.testing import CliRunner

from symbiotic_assets.memory.cli import import_command, record_app
from symbiotic_assets.memory.store import MemoryStore

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
