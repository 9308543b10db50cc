"""The DuckDB parse of git log output equals the Python reference parser, row for row.

The extraction parses in SQL for speed and hands a chunk to ``ColumnBatch`` whenever
SQL could read it differently; these tests pin both halves of that promise on literal
bytes: the tricky chunks SQL takes are read identically, and the ones it must not take
(not UTF-8, a separator inside a message, a malformed entry) go to Python.
"""

from __future__ import annotations

import duckdb
import pytest

from symbiotic_assets.git.log_parser import (
    _stage_with_python,
    is_bot,
    iter_chunks,
    iter_records,
    stage_chunk,
    stage_text_with_sql,
)

H = ["%040x" % (i + 1) for i in range(8)]


def record(h: str, parents: str, message: bytes, numstat: bytes = b"", *,
           name: bytes = b"Ann", email: bytes = b"ann@x", date: bytes = b"1704121200 -0500") -> bytes:  # fmt: skip
    head = b"\x1f".join([h.encode(), parents.encode(), name, email, date, b"Cy", b"cy@x",
                         b"1704121300 +0130", message])  # fmt: skip
    return b"\x1e" + head + b"\x1d\0" + (b"\n" + numstat if numstat else b"")


def rows(con: duckdb.DuckDBPyConnection) -> tuple[list, list]:
    commits = con.execute("SELECT * EXCLUDE (suspect) FROM chunk_commits ORDER BY hash").fetchall()
    files = con.execute("SELECT * FROM chunk_files ORDER BY ALL").fetchall()
    return commits, files


def both(data: bytes) -> tuple[tuple[list, list] | None, tuple[list, list]]:
    """(rows as SQL staged them, or None if it declined; rows as Python staged them)."""
    con = duckdb.connect()
    sql = None
    if stage_text_with_sql(con, data.decode("utf-8")) is not None:
        sql = rows(con)
    _stage_with_python(con, data)
    return sql, rows(con)


TRICKY = b"".join(
    [
        record(H[0], "", b"first\n", b"3\t1\tsrc/a.py\0-\t-\tlogo.png\0"),
        record(H[1], f"{H[0]} {H[2]}", b"Merge x\n"),
        # a \x1f inside the message, CRLF, unicode spaces around subject lines, paragraphs
        record(
            H[2],
            H[0],
            "  Fix\u00a0 the\x1fthing \r\n\u3000second line\u2003\n\n\n"
            "body one\n\n\nbody two\n\n".encode(),
            b"0\t0\t\0old name.py\0new\tname.py\0",
        ),  # fmt: skip
        # paths with a tab, a newline, \x1d, a leading digit-tab look-alike, non-ASCII
        record(
            H[3],
            H[2],
            "Café ☕ déjà vu\n".encode(),
            b"1\t2\tdir/we\tird\npath\x1d.txt\0"
            + b"5\t5\t\x0012\t3\t\x00x\0"
            + b"7\t0\tna\xc3\xafve.txt\0"
            + b"0\t0\t\0a\0b\0",
            name="José".encode(),
        ),  # fmt: skip
        record(
            H[4],
            H[3],
            b"\n\nleading blank lines\n",
            b"10\t0\tnew.txt\0",
            name=b"dependabot[bot]",
            email=b"49699333+dependabot[bot]@users.noreply.github.com",
        ),  # fmt: skip
        record(H[5], H[4], b"only subject", name=b"x\xc2\xa0bot", email=b"x@y"),
        record(H[6], H[5], b"", name=b"robot", email=b"ci-bot@example.com", date=b"0 +0000"),
        record(H[7], H[6], b"half hour\n", b"1\t1\tz\0", name=b"Abbot", date=b"1 -0330"),
    ]
)


def test_sql_reads_tricky_chunks_exactly_like_python():
    sql, py = both(TRICKY)
    assert sql is not None, "SQL declined a chunk it should take"
    assert sql == py
    commits = {c[0]: c for c in py[0]}
    assert commits[H[2]][11:13] == ("Fix\u00a0 the\x1fthing second line", "body one\n\n\nbody two")
    assert sorted(f for f in py[1] if f[0] == H[3]) == sorted([
        (H[3], "b", "a", False, 0, 0),
        (H[3], "dir/we\tird\npath\x1d.txt", None, False, 1, 2),
        (H[3], "na\u00efve.txt", None, False, 7, 0),
        (H[3], "x", "12\t3\t", False, 5, 5),
    ])  # fmt: skip
    bots = {c[0]: c[17] for c in py[0]}
    assert [bots[h] for h in H] == [False, False, False, False, True, True, True, False]
    offsets = {c[0]: (c[6], c[8]) for c in py[0]}
    assert offsets[H[7]] == (-210, 90)


def test_sql_bot_pattern_matches_python_on_unicode_spaces_and_case():
    names = ["my-bot", "BOT", "bot", "x\u2003bot", "Bot\u3000Smith", "abbot", "bots", "robot",
             "renovate[bot]", "Snyk-Bot", "x.bot@", "\u1680bot"]  # fmt: skip
    data = b"".join(
        record(H[i % 8][:-3] + f"{i:03x}", "", b"m\n", name=n.encode()) for i, n in enumerate(names)
    )
    sql, py = both(data)
    assert sql == py
    assert [c[17] for c in sorted(py[0])] == [
        is_bot(n, "ann@x") for n in [names[i] for i in sorted(range(len(names)),
                                                               key=lambda i: H[i % 8][:-3] + f"{i:03x}")]
    ]  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        record(H[0], "", b"Caf\xe9\n", b"1\t0\tna\xefve.txt\0", name=b"Jos\xe9"),  # Latin-1
        record(H[0], "", b"odd \x1e message\n") + record(H[1], H[0], b"next\n"),  # stray \x1e
        record(H[0], "", b"odd \x1e\x1e twice\n") + record(H[1], H[0], b"next\n"),
        record(H[0], "", b"a hash \x1e" + H[2].encode() + b"\n"),  # \x1e, hash, no \x1f
        record(H[0], "", b"date\n", date=b"1704121200 +05300"),  # an offset git never writes
    ],
)
def test_chunks_sql_must_not_read_go_to_python(data: bytes):
    con = duckdb.connect()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        assert stage_text_with_sql(con, text) is None
    n = stage_chunk(con, data)
    got = rows(con)
    _stage_with_python(con, data)
    assert n == len(list(iter_records([data]))) and got == rows(con)


def test_malformed_numstat_entry_is_refused_not_skipped():
    con = duckdb.connect()
    data = record(H[0], "", b"x\n", b"1\t1\ta\0garbage\0")
    assert stage_text_with_sql(con, data.decode()) is None
    with pytest.raises(ValueError, match="unexpected numstat entry"):
        stage_chunk(con, data)


@pytest.mark.parametrize("target", [1, 50, 200, 1 << 20])
def test_chunks_cut_only_at_record_starts(target: int):
    pieces = list(iter_chunks([TRICKY[i : i + 7] for i in range(0, len(TRICKY), 7)], target))
    assert b"".join(pieces) == TRICKY
    assert [r for p in pieces for r in iter_records([p])] == list(iter_records([TRICKY]))
