"""Parse reflog lines into typed ref events.

A reflog line is ``<old> <new> <name> <<email>> <epoch> <+hhmm|-hhmm>\\t<message>``.
The offset may be negative; an earlier tool dropped those lines and so read
zero branch switches for everyone west of Greenwich. Only local clones have
reflogs; a repository without one has unknown, not zero, switches.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from symbiotic_assets.git.log_parser import decode

_LINE = re.compile(
    rb"^(?P<old>[0-9a-f]{40,64}) (?P<new>[0-9a-f]{40,64}) (?P<name>.*?) <(?P<email>[^>]*)> "
    rb"(?P<epoch>\d+) (?P<tz>[+-]\d{4})(?:\t(?P<msg>.*))?$"
)

_CHECKOUT = re.compile(r"^checkout: moving from (?P<from>.+) to (?P<to>.+)$")
_CREATED = re.compile(r"^branch: Created from (?P<from>.+)$")
_RENAMED = re.compile(r"^Branch: renamed (?P<from>\S+) to (?P<to>\S+)$")
_MERGE = re.compile(r"^merge (?P<from>[^:]+):")
_RESET = re.compile(r"^reset: moving to (?P<to>.+)$")

EVENT_TYPES = (
    "checkout", "branch_created", "branch_deleted", "branch_renamed", "commit", "merge",
    "rebase", "reset", "pull", "cherry_pick", "revert", "clone", "fetch", "push", "other",
)  # fmt: skip


@dataclass(frozen=True)
class RefEvent:
    event_key: str
    ref_name: str
    event_type: str
    from_ref: str | None
    to_ref: str | None
    is_switch: bool
    old_hash: str
    new_hash: str
    actor_name: str
    actor_email: str
    occurred_epoch: int
    utc_offset_minutes: int
    message: str


def classify(message: str) -> tuple[str, str | None, str | None]:
    """(event type, from ref, to ref) for a reflog message."""
    if m := _CHECKOUT.match(message):
        return "checkout", m.group("from"), m.group("to")
    if m := _CREATED.match(message):
        return "branch_created", m.group("from"), None
    if m := _RENAMED.match(message):
        return "branch_renamed", m.group("from"), m.group("to")
    if message.startswith("commit"):
        return "commit", None, None
    if m := _MERGE.match(message):
        return "merge", m.group("from").strip(), None
    if message.startswith("pull"):
        return "pull", None, None
    if message.startswith("rebase"):
        return "rebase", None, None
    if m := _RESET.match(message):
        return "reset", None, m.group("to")
    if message.startswith("branch: Reset to"):
        return "reset", None, message[len("branch: Reset to ") :]
    if message.startswith("cherry-pick"):
        return "cherry_pick", None, None
    if message.startswith("revert"):
        return "revert", None, None
    if message.startswith("clone"):
        return "clone", None, None
    if message.startswith("fetch"):
        return "fetch", None, None
    if message.startswith("update by push") or message.startswith("push"):
        return "push", None, None
    return "other", None, None


def _offset_minutes(tz: str) -> int:
    sign = -1 if tz[0] == "-" else 1
    return sign * (int(tz[1:3]) * 60 + int(tz[3:5]))


def parse_reflog(ref_name: str, content: bytes, repository: str) -> list[RefEvent]:
    """All events of one reflog file; malformed lines are skipped, not guessed at.

    The key of an event is a hash of its repository, ref, line and the count
    of identical lines before it, so re-reading a file (or one whose oldest
    lines were expired) yields the same keys for the same events.
    """
    events: list[RefEvent] = []
    seen: Counter[bytes] = Counter()
    for raw in content.split(b"\n"):
        if not raw:
            continue
        m = _LINE.match(raw)
        if not m:
            continue
        occurrence = seen[raw]
        seen[raw] += 1
        key = hashlib.sha1(
            repository.encode()
            + b"\0"
            + ref_name.encode()
            + b"\0"
            + raw
            + b"\0"
            + str(occurrence).encode()
        ).hexdigest()
        message = decode(m.group("msg") or b"")
        event_type, from_ref, to_ref = classify(message)
        if event_type == "branch_created" and ref_name.startswith("refs/heads/"):
            to_ref = ref_name[len("refs/heads/") :]
        events.append(
            RefEvent(
                event_key=key,
                ref_name=ref_name,
                event_type=event_type,
                from_ref=from_ref,
                to_ref=to_ref,
                is_switch=event_type == "checkout" and from_ref != to_ref,
                old_hash=m.group("old").decode(),
                new_hash=m.group("new").decode(),
                actor_name=decode(m.group("name")),
                actor_email=decode(m.group("email")),
                occurred_epoch=int(m.group("epoch")),
                utc_offset_minutes=_offset_minutes(m.group("tz").decode()),
                message=message,
            )
        )
    return events


def parse_reflogs(files: Iterable[tuple[str, bytes]], repository: str) -> list[RefEvent]:
    out: list[RefEvent] = []
    for ref_name, content in files:
        out.extend(parse_reflog(ref_name, content, repository))
    return out
