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

Hostile input: any bytes at all may arrive (a truncated upload, a binary file
named ``.jsonl``, a producer's bug), and nothing in them may stop the import or
cost the valid lines around them. So a line is refused, with a reason, when it
is longer than ``MAX_LINE_BYTES`` (read in bounded pieces, never whole), nested
deeper than ``MAX_DEPTH``, holds a number of more than ``MAX_NUMBER_CHARS``
characters, repeats a key, or fails in any way while being parsed and validated;
and each line is stored under its own savepoint, so that one the database
refuses is quarantined without undoing its batch.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from symbiotic_assets.events.models import (
    InvalidRecordError,
    MemoryRecord,
    printable,
    validate_record,
)
from symbiotic_assets.events.store import MemoryStore

BATCH_LINES = 500
# A batch is also written once its lines reach this size, so that 500 lines of a few
# MB each do not sit in memory together.
BATCH_BYTES = 32 * 1024 * 1024
MAX_RAW_CHARS = 65_536
# The largest valid record (a search event: 1,000 results of 200 characters, each
# written as a \uXXXX surrogate pair) is under 2.5 MB; a longer line is refused
# after reading it in pieces of this size, so memory stays bounded.
MAX_LINE_BYTES = 4 * 1024 * 1024
# Records are flat objects with lists of strings: depth 2. Deeper nesting is refused
# before Python's recursion limit is anywhere near.
MAX_DEPTH = 16
# 2**63 has 19 digits; a longer number is no id, count or time this store keeps, and
# converting thousands of digits is slow (Python refuses beyond 4,300).
MAX_NUMBER_CHARS = 100

# What storing a validated record can raise because of the record's own values
# (a number SQLite cannot hold, text it cannot encode, a CHECK constraint).
# Anything else (disk full, a locked or corrupt file) is not the line's fault and
# stops the import, after the batches already committed.
_STORE_DATA_ERRORS = (
    ValueError,
    OverflowError,
    TypeError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
)


@dataclass
class ImportResult:
    """Counts for one import: ``read`` = ``stored`` + ``duplicates`` + ``quarantined``."""

    source: str
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0


class _Refused(ValueError):
    """Raised from inside the JSON parser's hooks; becomes a quarantine reason."""


def _line_problem(problem: str) -> InvalidRecordError:
    return InvalidRecordError("line", [("(line)", problem)])


def _object_checking_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    for key, _ in pairs:
        if printable(key) != key:
            raise _Refused(f"key {printable(repr(key))} is not valid Unicode text")
    return _object(pairs)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"key {key!r} appears more than once in one object")
            seen.add(key)
    return data


def _integer(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number of {len(text)} digits (at most {MAX_NUMBER_CHARS} are read)")
    return int(text)


def _decimal(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS} are read)")
    return float(text)


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests containers deeper than ``MAX_DEPTH`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_DEPTH:
                    return True
                stack.append((child, depth + 1))
    return False


# Built once: json.loads with hooks would build a decoder per line.
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_int=_integer, parse_float=_decimal)
_DECODER_CHECKING_KEYS = json.JSONDecoder(
    object_pairs_hook=_object_checking_keys, parse_int=_integer, parse_float=_decimal
)


def _load_json(text: str) -> Any:
    # Only a \uD800-\uDFFF escape can put a surrogate into a key: look for one only then.
    escapes = "\\ud" in text or "\\uD" in text
    decoder = _DECODER_CHECKING_KEYS if escapes else _DECODER
    try:
        return decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise _line_problem(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except _Refused as exc:
        raise _line_problem(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise _line_problem(f"invalid JSON: nested deeper than {MAX_DEPTH} levels") from None


def parse_line(raw: bytes) -> MemoryRecord:
    """Turn one line into a validated record, or raise ``InvalidRecordError`` saying why.

    Whatever the bytes, only ``InvalidRecordError`` leaves this function: a failure
    of the parser or a validator on hostile input is the line's problem, reported
    with the exception's type, not a crash of the import.
    """
    try:
        return _parse_line(raw)
    except InvalidRecordError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure on one line's bytes is that line's
        raise _line_problem(
            f"cannot be read as a record ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None


def _parse_line(raw: bytes) -> MemoryRecord:
    if len(raw) > MAX_LINE_BYTES:
        raise _line_problem(f"longer than {MAX_LINE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _line_problem(f"not UTF-8: byte {exc.start} is {raw[exc.start]:#04x}") from None
    data = _load_json(text)
    brackets = text.count("[") + text.count("{")  # an upper bound on the depth, in C
    if brackets > MAX_DEPTH and isinstance(data, dict | list) and _too_deep(data):
        raise _line_problem(f"invalid JSON: nested deeper than {MAX_DEPTH} levels")
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
        raise FileNotFoundError(f"{printable(str(path))}: no such file to import")
    source = printable(str(path.resolve()))
    result = ImportResult(source=source)
    consumed = pending_bytes = 0
    # (line number, the line's start as quarantine would keep it, what it parsed to)
    pending: list[tuple[int, bytes, MemoryRecord | InvalidRecordError]] = []

    def quarantine(line_number: int, raw: bytes, reason: str) -> None:
        text = raw.decode("utf-8", errors="backslashreplace")
        store.quarantine_line(source, line_number, reason, text[:MAX_RAW_CHARS])
        result.quarantined += 1

    def flush() -> None:
        nonlocal pending_bytes
        with store.transaction():
            for line_number, raw, parsed in pending:
                if isinstance(parsed, InvalidRecordError):
                    quarantine(line_number, raw, str(parsed))
                    continue
                try:
                    with store.savepoint():
                        created = store.record(parsed).created
                except _STORE_DATA_ERRORS as exc:
                    reason = f"{parsed.kind}: cannot be stored ({type(exc).__name__}: {exc})"
                    quarantine(line_number, raw, reason[:1000])
                    continue
                if created:
                    result.stored += 1
                else:
                    result.duplicates += 1
        pending.clear()
        pending_bytes = 0
        if on_progress is not None:
            on_progress(consumed)

    with path.open("rb") as handle:
        for line_number, (raw_line, size, whole) in enumerate(_lines(handle), start=1):
            consumed += size
            raw = raw_line.rstrip(b"\r\n")
            if line_number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a BOM some editors write
            if whole and not raw.strip():
                continue
            result.read += 1
            parsed: MemoryRecord | InvalidRecordError
            if not whole:
                parsed = _line_problem(
                    f"longer than {MAX_LINE_BYTES} bytes ({size} bytes); only the start is kept"
                )
            else:
                try:
                    parsed = parse_line(raw)
                except InvalidRecordError as exc:
                    parsed = exc
            pending.append((line_number, raw[: MAX_RAW_CHARS * 4], parsed))
            pending_bytes += size
            if len(pending) >= BATCH_LINES or pending_bytes >= BATCH_BYTES:
                flush()
    flush()
    return result


def _lines(handle: IO[bytes]) -> Iterator[tuple[bytes, int, bool]]:
    """Each line, its size in bytes and whether it is whole.

    A line over ``MAX_LINE_BYTES`` (newline not counted) yields only its start.

    ``for line in handle`` would hold a whole line in memory, and a file with no
    newline is one line as large as the file.
    """
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        size = len(line)
        if size > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:  # skip the rest of this line, counting it
                more = handle.readline(1 << 20)
                size += len(more)
                if not more or more.endswith(b"\n"):
                    break
            yield line[: MAX_RAW_CHARS * 4], size, False
        else:
            yield line, size, True
