"""The pure parsers, on literal bytes: no git, no DuckDB."""

from __future__ import annotations

import pytest

from symbiotic_assets.git.log_parser import (
    is_bot,
    iter_records,
    parse_log_stream,
    parse_raw_date,
    parse_record,
    split_message,
)
from symbiotic_assets.git.reflog import classify, parse_reflog

H1 = "a" * 40
H2 = "b" * 40
H3 = "c" * 40


def record(
    h: str,
    parents: str,
    message: bytes,
    numstat: bytes = b"",
    *,
    name: bytes = b"Ann",
    date: bytes = b"1704121200 -0500",
) -> bytes:
    head = b"\x1f".join(
        [
            h.encode(),
            parents.encode(),
            name,
            b"ann@x",
            date,
            b"Cy",
            b"cy@x",
            b"1704121300 +0130",
            message,
        ]
    )
    return b"\x1e" + head + b"\x1d\0\n" + numstat


def test_raw_dates_keep_negative_and_half_hour_offsets():
    assert parse_raw_date("1704121200 -0500") == (1704121200, -300)
    assert parse_raw_date("1704121200 +0530") == (1704121200, 330)
    assert parse_raw_date("0 -0030") == (0, -30)
    with pytest.raises(ValueError, match="unparseable git date"):
        parse_raw_date("yesterday")


def test_record_with_rename_binary_and_plain_files():
    numstat = b"3\t1\tsrc/a.py\0-\t-\tlogo.png\0" + b"0\t0\t\0old/name.py\0new/name.py\0"
    c = parse_record(record(H1, f"{H2} {H3}", b"Subject line\n\nBody text\nmore\n", numstat)[1:])
    assert c.hash == H1 and c.parents == [H2, H3]
    assert (c.authored_epoch, c.author_offset, c.committer_offset) == (1704121200, -300, 90)
    assert (c.subject, c.body) == ("Subject line", "Body text\nmore")
    assert [(f.path, f.old_path, f.is_binary, f.insertions, f.deletions) for f in c.files] == [
        ("src/a.py", None, False, 3, 1),
        ("logo.png", None, True, None, None),
        ("new/name.py", "old/name.py", False, 0, 0),
    ]
    assert (c.insertions, c.deletions, c.binary_files) == (3, 1, 1)


def test_stream_split_across_arbitrary_chunks_and_separator_in_message():
    stream = (
        record(H1, "", b"first\n", b"1\t0\ta.txt\0")
        + record(H2, H1, b"odd \x1e message\x1e" + b"z" * 50 + b"\n", b"2\t2\tb.txt\0")
        + record(H3, H2, b"third\n")
    )
    for size in (1, 7, 64, len(stream)):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        commits = list(parse_log_stream(chunks))
        assert [c.hash for c in commits] == [H1, H2, H3], size
        assert commits[1].subject.startswith("odd \x1e message\x1e")
        assert [f.path for f in commits[1].files] == ["b.txt"]


def test_non_utf8_names_and_messages_decode_as_latin1():
    c = parse_record(record(H1, "", b"Caf\xe9 fix\n", b"1\t0\tna\xefve.txt\0", name=b"Jos\xe9")[1:])
    assert c.author_name == "José" and c.subject == "Café fix" and c.files[0].path == "naïve.txt"


def test_malformed_record_names_the_problem():
    with pytest.raises(ValueError, match="expected 9"):
        parse_record(b"deadbeef\x1fonly two\x1d")
    with pytest.raises(ValueError, match="message terminator"):
        parse_record(b"no terminator at all")
    assert list(iter_records([b""])) == []


def test_subject_joins_first_paragraph_like_git():
    assert split_message("line one\nline two\n\nbody\n") == ("line one line two", "body")


def test_bot_detection():
    assert is_bot("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com")
    assert is_bot("renovate", "bot@renovateapp.com")
    assert is_bot("github-actions", "41898282+github-actions[bot]@users.noreply.github.com")
    assert not is_bot("Abbott Lee", "abbott@example.com")
    assert not is_bot("Robot Framework Fan", "fan@example.com")


REFLOG = (
    f"{H1} {H2} Ann <ann@x> 1704121200 -0500\tcheckout: moving from main to feature\n"
    f"{H2} {H2} Ann <ann@x> 1704121200 -0500\tcheckout: moving from main to feature\n"
    f"{H2} {H2} Ann <ann@x> 1704121260 +0000\tcheckout: moving from feature to feature\n"
    f"{H2} {H3} Ann <ann@x> 1704121300 -0330\tcommit (merge): Merge branch 'x'\n"
    "garbage line that is not a reflog entry\n"
    f"{H3} {H1} Ann <ann@x> 1704121400 +0100\treset: moving to HEAD~1\n"
).encode()


def test_reflog_negative_offsets_switches_and_stable_keys():
    events = parse_reflog("HEAD", REFLOG, "repo")
    assert len(events) == 5
    assert [e.utc_offset_minutes for e in events] == [-300, -300, 0, -210, 60]
    assert [e.is_switch for e in events] == [True, True, False, False, False]
    assert events[0].from_ref == "main" and events[0].to_ref == "feature"
    assert [e.event_type for e in events] == ["checkout", "checkout", "checkout", "commit", "reset"]
    assert len({e.event_key for e in events}) == 5
    again = parse_reflog("HEAD", REFLOG, "repo")
    assert [e.event_key for e in again] == [e.event_key for e in events]
    # expiring the oldest line keeps the keys of the others
    trimmed = parse_reflog("HEAD", b"\n".join(REFLOG.split(b"\n")[1:]), "repo")
    assert {e.event_key for e in trimmed} < {e.event_key for e in events}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("branch: Created from HEAD", ("branch_created", "HEAD", None)),
        (
            "Branch: renamed refs/heads/a to refs/heads/b",
            ("branch_renamed", "refs/heads/a", "refs/heads/b"),
        ),
        ("merge feature: Fast-forward", ("merge", "feature", None)),
        ("rebase (finish): returning to refs/heads/x", ("rebase", None, None)),
        ("pull --rebase (start): checkout abc", ("pull", None, None)),
        ("cherry-pick: fix", ("cherry_pick", None, None)),
        ("clone: from somewhere", ("clone", None, None)),
        ("something new", ("other", None, None)),
    ],
)
def test_reflog_classification(message, expected):
    assert classify(message) == expected
