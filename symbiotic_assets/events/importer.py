"""Batch import of JSON-lines files into the memory store.

Batch producers (exports of older tools, CI jobs that buffer events) hand over
files of thousands of records, some of them broken. One bad line must not cost
the good ones, and a file imported twice (a retried job) must not count twice.
So each line is validated on its own: valid ones are stored through the same
idempotent path as the API, invalid ones go to the store's ``quarantine``
table with the file, the line number, the reason and the raw text, and the
import carries on.

Why a table rather than a file next to the store: it is written in the same
transaction as the good lines of its batch (a crash leaves no half-reported
import), many importers can write it at once, and a second import of the same
file does not add the same bad lines again.

Line format: one JSON object per line, with ``type`` naming the record kind
(``fix_attempt`` when absent, ``feedback``, ``session``, ``skill_invocation``,
``search``, ``search_click``); the other keys are the model's fields. Blank
lines are skipped and not counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from symbiotic_assets.events.models import InvalidRecordError, MemoryRecord, validate_record
from symbiotic_assets.events.store import MemoryStore

BATCH_LINES = 500
MAX_RAW_CHARS = 65_536


@dataclass
class ImportResult:
    """Counts for one import: ``read`` = ``stored`` + ``duplicates`` + ``quarantined``."""

    source: str
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0


def parse_line(raw: bytes) -> MemoryRecord:
    """Turn one line into a validated record, or raise ``InvalidRecordError`` saying why."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRecordError(
            "line", [("(line)", f"not UTF-8: byte {exc.start} is {raw[exc.start]:#04x}")]
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRecordError(
            "line", [("(line)", f"invalid JSON: {exc.msg} at column {exc.colno}")]
        ) from None
    if not isinstance(data, dict):
        raise InvalidRecordError(
            "line", [("(line)", f"expected a JSON object, got {type(data).__name__}")]
        )
    kind = data.pop("type", "fix_attempt")
    if not isinstance(kind, str):
        raise InvalidRecordError("line", [("type", f"must be a string, got {kind!r}")])
    return validate_record(kind, data)


def import_jsonl(
    path: str | Path,
    store: MemoryStore,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import ``path`` line by line into ``store``; never stops at a bad line.

    ``on_progress`` receives the number of bytes consumed so far (for a
    progress bar sized by the file). The file is streamed, so its size does
    not bound memory.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file to import")
    source = str(path.resolve())
    result = ImportResult(source=source)
    consumed = 0
    pending: list[tuple[int, bytes, MemoryRecord | InvalidRecordError]] = []

    def flush() -> None:
        with store.transaction():
            for line_number, raw, parsed in pending:
                if isinstance(parsed, InvalidRecordError):
                    text = raw.decode("utf-8", errors="backslashreplace")[:MAX_RAW_CHARS]
                    store.quarantine_line(source, line_number, str(parsed), text)
                    result.quarantined += 1
                elif store.record(parsed).created:
                    result.stored += 1
                else:
                    result.duplicates += 1
        pending.clear()
        if on_progress is not None:
            on_progress(consumed)

    with path.open("rb") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            consumed += len(raw_line)
            raw = raw_line.rstrip(b"\r\n")
            if line_number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a BOM some editors write
            if not raw.strip():
                continue
            result.read += 1
            try:
                parsed: MemoryRecord | InvalidRecordError = parse_line(raw)
            except InvalidRecordError as exc:
                parsed = exc
            pending.append((line_number, raw, parsed))
            if len(pending) >= BATCH_LINES:
                flush()
    flush()
    return result
