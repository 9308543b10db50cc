"""JSON-lines import: good lines stored, bad lines quarantined with the reason, re-import a no-op."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from memory_records import attempt

from symbiotic_assets.events.importer import BATCH_LINES, import_jsonl
from symbiotic_assets.events.store import MemoryStore

GOOD = [
    json.dumps(attempt(1)),  # no type: a fix attempt
    json.dumps({"type": "fix_attempt", **attempt(2, issue_type="license_header")}),
    json.dumps(
        {
            "type": "feedback",
            "recommendation_id": "rec-1",
            "accepted": True,
            "outcome": "succeeded",
            "confidence": 0.7,
            "timestamp": "2025-03-01T10:00:00Z",
        }
    ),
    json.dumps(
        {
            "type": "session",
            "session_id": "s1",
            "phase": "end",
            "duration_seconds": 30,
            "quality_score": 91,
            "tools_used": ["ruff"],
            "timestamp": "2025-03-01T10:00:00Z",
        }
    ),
    json.dumps(
        {
            "type": "skill_invocation",
            "skill_name": "RefactoringAgent",
            "completed": True,
            "succeeded": True,
            "timestamp": "2025-03-01T10:00:00Z",
        }
    ),
    json.dumps(
        {
            "type": "search",
            "query": "retry logic",
            "results_shown": ["ab12", "cd34"],
            "timestamp": "2025-03-01T10:00:00Z",
        }
    ),
    json.dumps(
        {
            "type": "search_click",
            "query": "retry logic",
            "clicked_hash": "cd34",
            "rank": 2,
            "timestamp": "2025-03-01T10:00:00Z",
        }
    ),
]
BAD = {
    "{not json": "invalid JSON",
    json.dumps(attempt(3, line_number=-5)): "fix_attempt.line_number: Input should be greater",
    json.dumps({"type": "telemetry", "x": 1}): "unknown record type 'telemetry'",
    json.dumps([1, 2, 3]): "expected a JSON object, got list",
    json.dumps(
        attempt(4, timestamp="2025-03-01 10:00:00")
    ): "fix_attempt.timestamp: needs a UTC offset",
    json.dumps({"type": "feedback", "shown": True}): "feedback.recommendation_id: Field required",
}


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    with path.open("wb") as handle:
        for line in lines:
            handle.write(line if isinstance(line, bytes) else line.encode())
            handle.write(b"\n")
    return path


def test_good_lines_stored_bad_lines_quarantined(store: MemoryStore, tmp_path: Path):
    bad_lines = list(BAD)
    # Interleave: good, bad, good, bad, ..., with a blank line and a non-UTF-8 line.
    lines: list[str | bytes] = []
    for i in range(max(len(GOOD), len(bad_lines))):
        if i < len(GOOD):
            lines.append(GOOD[i])
        if i < len(bad_lines):
            lines.append(bad_lines[i])
    lines.append("")
    lines.append(b'{"message": "caf\xe9"}')
    path = write_lines(tmp_path / "export.jsonl", lines)

    result = import_jsonl(path, store)
    assert (result.read, result.stored, result.duplicates, result.quarantined) == (14, 7, 0, 7)
    assert store.count("fix_attempts") == 2
    assert store.count("recommendation_feedback") == 1
    assert {e.event_type for e in store.list_events()} == {
        "session",
        "skill_invocation",
        "search",
        "search_click",
    }

    rows = store.list_quarantine(str(path.resolve()))
    assert len(rows) == 7
    by_raw = {r["raw"]: r for r in rows}
    for raw, reason in BAD.items():
        row = by_raw[raw]
        assert reason in row["reason"]
        assert lines[row["line_number"] - 1] == raw
    non_utf8 = next(r for r in rows if "not UTF-8" in r["reason"])
    assert non_utf8["line_number"] == len(lines)
    assert "\\xe9" in non_utf8["raw"]


def test_reimport_stores_nothing_new(store: MemoryStore, tmp_path: Path):
    path = write_lines(tmp_path / "export.jsonl", [*GOOD, *BAD])
    first = import_jsonl(path, store)
    counts = {
        t: store.count(t)
        for t in ("fix_attempts", "recommendation_feedback", "events", "quarantine")
    }
    again = import_jsonl(path, store)
    assert (first.stored, first.quarantined) == (7, 6)
    assert (again.read, again.stored, again.duplicates, again.quarantined) == (13, 0, 7, 6)
    assert {t: store.count(t) for t in counts} == counts


def test_duplicates_within_a_file_and_against_the_api(store: MemoryStore, tmp_path: Path):
    store.record_fix_attempt(attempt(1))
    keyed = json.dumps(attempt(9, idempotency_key="batch-9"))
    path = write_lines(
        tmp_path / "d.jsonl", [json.dumps(attempt(1)), keyed, keyed, json.dumps(attempt(2))]
    )
    result = import_jsonl(path, store)
    assert (result.stored, result.duplicates) == (2, 2)
    assert store.count("fix_attempts") == 3


def test_many_lines_span_batches_and_report_progress(store: MemoryStore, tmp_path: Path):
    n = BATCH_LINES * 2 + 37
    lines = [json.dumps(attempt(i, idempotency_key=f"k{i}")) for i in range(n)]
    lines[BATCH_LINES + 5] = "garbage"
    path = write_lines(tmp_path / "big.jsonl", lines)
    seen: list[int] = []
    result = import_jsonl(path, store, on_progress=seen.append)
    assert (result.read, result.stored, result.quarantined) == (n, n - 1, 1)
    assert seen == sorted(seen) and len(seen) == 3
    assert seen[-1] == path.stat().st_size
    (q,) = store.list_quarantine()
    assert q["line_number"] == BATCH_LINES + 6


def test_missing_file_is_named(store: MemoryStore, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl: no such file"):
        import_jsonl(tmp_path / "nope.jsonl", store)
