"""Parse the byte stream of one ``git log`` run into commits and per-file churn.

The stream comes from ``git log -z --numstat -M --date=raw --format=LOG_FORMAT``:
every commit starts with ``\\x1e``, header fields are split by ``\\x1f``, the raw
message ends with ``\\x1d``, and numstat entries follow, NUL-terminated
(``ins\\tdel\\tpath`` or, for a rename, ``ins\\tdel\\t`` then old and new path).
Nothing here starts a process: the parser takes byte chunks, so it is tested on
literal bytes and fed by a pipe in production.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

LOG_FORMAT = "%x1e%H%x1f%P%x1f%aN%x1f%aE%x1f%ad%x1f%cN%x1f%cE%x1f%cd%x1f%B%x1d"
LOG_ARGS = ["-z", "--numstat", "-M", "--date=raw", "--use-mailmap", f"--format={LOG_FORMAT}"]
# the same records without the diff: for commits whose diff git cannot compute
HEADER_ARGS = ["-z", "--date=raw", "--use-mailmap", f"--format={LOG_FORMAT}"]

_RECORD = b"\x1e"
_HASH_START = re.compile(rb"^[0-9a-f]{40,64}\x1f")

BOT_PATTERNS = re.compile(
    r"(\[bot\]|(^|[-_.\s])bot($|[-_.\s@])|dependabot|renovate|github-actions|pre-commit-ci|"
    r"greenkeeper|snyk-bot|mergify|codecov|allcontributors|semantic-release)",
    re.IGNORECASE,
)


def decode(raw: bytes) -> str:
    """UTF-8 when it is; otherwise Latin-1, which maps every byte and keeps names readable."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_raw_date(raw: str) -> tuple[int, int]:
    """``'1704121200 -0500'`` to (epoch seconds, offset in minutes): (1704121200, -300)."""
    try:
        epoch_s, tz = raw.split(" ")
        sign = -1 if tz[0] == "-" else 1
        digits = tz.lstrip("+-")
        minutes = sign * (int(digits[:-2] or 0) * 60 + int(digits[-2:]))
        return int(epoch_s), minutes
    except (ValueError, IndexError) as exc:
        raise ValueError(f"unparseable git date {raw!r}") from exc


def is_bot(name: str, email: str) -> bool:
    return bool(
        BOT_PATTERNS.search(name) or BOT_PATTERNS.search(email.split("@")[0])
    ) or email.endswith("[bot]@users.noreply.github.com")


@dataclass
class FileChange:
    path: str
    old_path: str | None
    is_binary: bool
    insertions: int | None
    deletions: int | None


@dataclass
class Commit:
    hash: str
    parents: list[str]
    author_name: str
    author_email: str
    authored_epoch: int
    author_offset: int
    committer_name: str
    committer_email: str
    committed_epoch: int
    committer_offset: int
    subject: str
    body: str
    files: list[FileChange] = field(default_factory=list)

    @property
    def insertions(self) -> int:
        return sum(f.insertions or 0 for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deletions or 0 for f in self.files)

    @property
    def binary_files(self) -> int:
        return sum(1 for f in self.files if f.is_binary)


def split_message(message: str) -> tuple[str, str]:
    """Subject is the first paragraph joined into one line (as ``%s``), body the rest."""
    message = message.strip("\n")
    head, _, rest = message.partition("\n\n")
    # split on "\n" only: str.splitlines would also split on \x1c-\x1e and other separators
    subject = " ".join(line.strip() for line in head.split("\n"))
    return subject, rest.strip("\n")


def parse_record(record: bytes) -> Commit:
    """One commit's bytes (without the leading ``\\x1e``) as an object.

    The same column parser the extraction streams through, read back, so a
    test of this function is a test of production parsing.
    """
    batch = ColumnBatch()
    batch.add(record)
    return next(batch.as_commits())


def iter_records(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Split a chunked stream into commit records.

    A ``\\x1e`` inside a commit message would look like a record start, so a
    record is only released once the next piece is seen to begin with a hash
    and a field separator; anything else is glued back onto the record.
    """
    pending = b""
    held: bytes | None = None
    for chunk in chunks:
        if not chunk:
            continue
        pending += chunk
        pieces = pending.split(_RECORD)
        pending = pieces.pop()
        for piece in pieces:
            if held is None:
                if piece:
                    held = piece
                continue
            if _HASH_START.match(piece):
                yield held
                held = piece
            else:
                held += _RECORD + piece
    if pending:
        if held is not None and not _HASH_START.match(pending):
            held += _RECORD + pending
        else:
            if held is not None:
                yield held
            held = pending
    if held is not None:
        yield held


def parse_log_stream(chunks: Iterable[bytes]) -> Iterator[Commit]:
    for batch in iter_batches(chunks, 1_000):
        yield from batch.as_commits()


class ColumnBatch:
    """Commits and file rows of one chunk, parsed straight into column lists.

    The streaming path builds no per-commit objects: one UTF-8 decode per record
    (Latin-1 per field only when that fails), one pass over the numstat entries,
    and bot detection cached per identity. ``as_commits()`` reads a batch back as
    objects, for tests and callers that want them.
    """

    COMMIT_COLUMNS = (
        "hash", "author_name", "author_email", "committer_name", "committer_email",
        "authored_epoch", "author_offset", "committed_epoch", "committer_offset", "parents",
        "parent_count", "subject", "body", "files_changed", "insertions", "deletions",
        "binary_files", "is_bot",
    )  # fmt: skip
    FILE_COLUMNS = ("commit_hash", "path", "old_path", "is_binary", "insertions", "deletions")

    _bot_cache: dict[tuple[str, str], bool] = {}

    def __init__(self) -> None:
        self.commits: dict[str, list] = {c: [] for c in self.COMMIT_COLUMNS}
        self.files: dict[str, list] = {c: [] for c in self.FILE_COLUMNS}

    def __len__(self) -> int:
        return len(self.commits["hash"])

    def as_commits(self) -> Iterator[Commit]:
        c, f = self.commits, self.files
        start = 0
        for i, h in enumerate(c["hash"]):
            end = start + c["files_changed"][i]
            yield Commit(
                hash=h,
                parents=c["parents"][i].split(),
                author_name=c["author_name"][i],
                author_email=c["author_email"][i],
                authored_epoch=c["authored_epoch"][i],
                author_offset=c["author_offset"][i],
                committer_name=c["committer_name"][i],
                committer_email=c["committer_email"][i],
                committed_epoch=c["committed_epoch"][i],
                committer_offset=c["committer_offset"][i],
                subject=c["subject"][i],
                body=c["body"][i],
                files=[
                    FileChange(
                        f["path"][j],
                        f["old_path"][j],
                        f["is_binary"][j],
                        f["insertions"][j],
                        f["deletions"][j],
                    )
                    for j in range(start, end)
                ],  # fmt: skip
            )
            start = end

    def add(self, record: bytes) -> None:
        head, sep, tail = record.partition(b"\x1d")
        if not sep:
            raise ValueError(f"commit record without message terminator: {record[:120]!r}")
        try:
            fields = head.decode("utf-8").split("\x1f", 8)
        except UnicodeDecodeError:
            fields = [decode(f) for f in head.split(b"\x1f", 8)]
        if len(fields) != 9:
            raise ValueError(
                f"commit record with {len(fields)} fields, expected 9: {record[:120]!r}"
            )
        h, parents, an, ae, ad, cn, ce, cd, message = fields
        a_epoch, a_off = parse_raw_date(ad)
        c_epoch, c_off = parse_raw_date(cd)
        subject, body = split_message(message)
        key = (an, ae)
        bot = self._bot_cache.get(key)
        if bot is None:
            bot = self._bot_cache[key] = is_bot(an, ae)

        fh, fp, fo, fb, fi, fd = (self.files[c] for c in self.FILE_COLUMNS)
        n_files = ins_total = del_total = binary = 0
        if tail.strip(b"\0\n"):
            tokens = tail.split(b"\0")
            i, n = 0, len(tokens)
            while i < n:
                tok = tokens[i]
                i += 1
                if tok[:1] == b"\n":
                    tok = tok.lstrip(b"\n")
                if not tok:
                    continue
                parts = tok.split(b"\t", 2)
                if len(parts) != 3:
                    raise ValueError(f"unexpected numstat entry {tok[:200]!r} in commit {h}")
                ins_b, del_b, path_b = parts
                old: str | None = None
                if not path_b:
                    old = decode(tokens[i])
                    path_b = tokens[i + 1]
                    i += 2
                n_files += 1
                fh.append(h)
                fp.append(decode(path_b))
                fo.append(old)
                if ins_b == b"-":
                    binary += 1
                    fb.append(True)
                    fi.append(None)
                    fd.append(None)
                else:
                    ins, dels = int(ins_b), int(del_b)
                    ins_total += ins
                    del_total += dels
                    fb.append(False)
                    fi.append(ins)
                    fd.append(dels)

        c = self.commits
        c["hash"].append(h)
        c["author_name"].append(an)
        c["author_email"].append(ae)
        c["committer_name"].append(cn)
        c["committer_email"].append(ce)
        c["authored_epoch"].append(a_epoch)
        c["author_offset"].append(a_off)
        c["committed_epoch"].append(c_epoch)
        c["committer_offset"].append(c_off)
        c["parents"].append(parents)
        c["parent_count"].append(parents.count(" ") + 1 if parents else 0)
        c["subject"].append(subject)
        c["body"].append(body)
        c["files_changed"].append(n_files)
        c["insertions"].append(ins_total)
        c["deletions"].append(del_total)
        c["binary_files"].append(binary)
        c["is_bot"].append(bot)


def iter_batches(chunks: Iterable[bytes], size: int) -> Iterator[ColumnBatch]:
    """Column batches of at most ``size`` commits from a chunked ``git log`` stream."""
    batch = ColumnBatch()
    for record in iter_records(chunks):
        batch.add(record)
        if len(batch) >= size:
            yield batch
            batch = ColumnBatch()
    if len(batch):
        yield batch


# ---------------------------------------------------------------------------------------
# The same parse in DuckDB, for the extraction's hot path.
#
# Parsing a commit in Python costs tens of microseconds, as much CPU as the git log that
# produces it (see benchmarks/bench_git.py). DuckDB splits, matches and casts the same
# bytes in vectorised C++, and the rows it produces are written without ever becoming
# Python objects. ``ColumnBatch`` stays the reference: a chunk the SQL cannot take
# exactly as Python would (bytes that are not UTF-8, a record separator inside a message,
# anything malformed) is parsed by it instead, so both paths store the same rows.

STAGED_COMMITS = "chunk_commits"
STAGED_FILES = "chunk_files"
STAGED_RECORDS = "chunk_records"  # the split records, read by both stages

# What str.strip() strips (str.isspace()), so subjects match split_message exactly.
_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
# BOT_PATTERNS for RE2: \s spelled out as Python's Unicode whitespace, case-insensitive.
_RE2_SPACE = "".join(
    f"\\x{{{ord(c):x}}}" for c in _WHITESPACE
)  # every whitespace code point, escaped
_BOT_RE2 = "(?i)" + BOT_PATTERNS.pattern.replace("\\s", _RE2_SPACE)
_BYTES_HASH_AT = re.compile(rb"[0-9a-f]{40,64}\x1f")

# one numstat entry: ``ins\tdel\tpath\0`` or, for a rename, ``ins\tdel\t\0old\0new\0``
_NUMSTAT_RE2 = r"\n*([0-9]+|-)\t([0-9]+|-)\t(?:([^\x00]+)|\x00([^\x00]*)\x00([^\x00]*))\x00"
_OFFSET_SQL = (
    "(CASE WHEN {t}[1] = '-' THEN -1 ELSE 1 END) * "
    "(TRY_CAST({t}[2:3] AS INTEGER) * 60 + TRY_CAST({t}[4:5] AS INTEGER))"
)

# records of the chunk: header fields (the message may hold \x1f, rejoined) and the tail
# after the first \x1d (the numstat entries, which may hold \x1d in a path)
_RECORDS_SQL = """
SELECT f[1] AS hash, f[2] AS parents, f[3] AS author_name, f[4] AS author_email,
       f[5] AS ad, f[6] AS committer_name, f[7] AS committer_email, f[8] AS cd,
       CASE WHEN len(f) = 9 THEN f[9] ELSE array_to_string(f[9:], chr(31)) END AS message,
       len(f) AS n_fields, n_parts, tail
FROM (
    SELECT string_split(p[1], chr(31)) AS f, len(p) AS n_parts,
           CASE WHEN len(p) = 2 THEN p[2] ELSE array_to_string(p[2:], chr(29)) END AS tail
    FROM (SELECT string_split(rec, chr(29)) AS p
          FROM (SELECT unnest(string_split($text, chr(30))) AS rec) WHERE rec <> '')
)
"""

# Split once per chunk into a temporary table: both stages below read it (splitting the
# text in each of them cost a sixth of the parse's CPU).
_STAGE_RECORDS_SQL = f"CREATE OR REPLACE TEMP TABLE {STAGED_RECORDS} AS {_RECORDS_SQL}"

_STAGE_FILES_SQL = f"""
CREATE OR REPLACE TEMP TABLE {STAGED_FILES} AS
SELECT hash AS commit_hash, coalesce(e.path, e.new) AS path, e.old AS old_path,
       e.ins = '-' AS is_binary, TRY_CAST(e.ins AS BIGINT) AS insertions,
       TRY_CAST(e.del AS BIGINT) AS deletions
FROM (SELECT hash, unnest(regexp_extract_all(tail, '{_NUMSTAT_RE2}',
                                             ['ins', 'del', 'path', 'old', 'new'])) AS e
      FROM {STAGED_RECORDS} WHERE strlen(tail) > 2)
"""

_STAGE_COMMITS_SQL = f"""
CREATE OR REPLACE TEMP TABLE {STAGED_COMMITS} AS
SELECT r.hash, r.author_name, r.author_email, r.committer_name, r.committer_email,
       TRY_CAST(split_part(r.ad, ' ', 1) AS BIGINT) AS authored_epoch,
       {_OFFSET_SQL.format(t="split_part(r.ad, ' ', 2)")} AS author_offset,
       TRY_CAST(split_part(r.cd, ' ', 1) AS BIGINT) AS committed_epoch,
       {_OFFSET_SQL.format(t="split_part(r.cd, ' ', 2)")} AS committer_offset,
       r.parents,
       CASE WHEN r.parents = '' THEN 0 ELSE len(string_split(r.parents, ' ')) END AS parent_count,
       CASE WHEN contains(r.head, chr(10))
            THEN array_to_string(list_transform(string_split(r.head, chr(10)),
                                                x -> trim(x, {{ws}})), ' ')
            ELSE trim(r.head, {{ws}}) END AS subject,
       CASE WHEN len(r.paragraphs) = 1 THEN ''
            ELSE trim(array_to_string(r.paragraphs[2:], chr(10) || chr(10)), chr(10)) END AS body,
       coalesce(a.n, 0)::INTEGER AS files_changed, coalesce(a.ins, 0)::BIGINT AS insertions,
       coalesce(a.del, 0)::BIGINT AS deletions, coalesce(a.bin, 0)::INTEGER AS binary_files,
       regexp_matches(r.author_name, '{{bot}}')
           OR regexp_matches(split_part(r.author_email, '@', 1), '{{bot}}')
           OR suffix(r.author_email, '[bot]@users.noreply.github.com') AS is_bot,
       -- what the Python parser would refuse or read differently: the chunk goes there
       (r.n_parts < 2 OR r.n_fields < 9
        OR authored_epoch IS NULL OR author_offset IS NULL
        OR committed_epoch IS NULL OR committer_offset IS NULL
        OR strlen(r.ad) <> strlen(split_part(r.ad, ' ', 1)) + 6
        OR strlen(r.cd) <> strlen(split_part(r.cd, ' ', 1)) + 6
        OR split_part(r.ad, ' ', 2)[1] NOT IN ('+', '-')
        OR split_part(r.cd, ' ', 2)[1] NOT IN ('+', '-')
       ) AS suspect
FROM (SELECT *, paragraphs[1] AS head
      FROM (SELECT *, string_split(trim(message, chr(10)), chr(10) || chr(10)) AS paragraphs
            FROM {STAGED_RECORDS})) r
LEFT JOIN (SELECT commit_hash, count(*) AS n, sum(insertions) AS ins, sum(deletions) AS del,
                  count(*) FILTER (WHERE is_binary) AS bin,
                  count(*) FILTER (WHERE old_path IS NOT NULL) AS renames
           FROM {STAGED_FILES} GROUP BY commit_hash) a ON a.commit_hash = r.hash
""".format(
    # literals, not parameters: DuckDB compiles a constant pattern once, a parameter per row
    bot=_BOT_RE2,
    ws=" || ".join(f"chr({ord(c)})" for c in _WHITESPACE),
)


def stage_chunk(con: Any, data: bytes) -> int:
    """Parse one chunk of whole ``git log`` records into the two staging tables.

    ``chunk_commits`` gets :attr:`ColumnBatch.COMMIT_COLUMNS`, ``chunk_files``
    :attr:`ColumnBatch.FILE_COLUMNS`, exactly as ``ColumnBatch`` would fill them.
    Returns the number of commits. DuckDB does the work when the chunk is UTF-8 and
    plain; otherwise ``ColumnBatch`` does, so nothing is lost or read differently.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _stage_with_python(con, data)
    staged = stage_text_with_sql(con, text)
    return _stage_with_python(con, data) if staged is None else staged


def stage_text_with_sql(con: Any, text: str) -> int | None:
    """The SQL parse of a decoded chunk; None when it declines (the Python parser decides)."""
    con.execute(_STAGE_RECORDS_SQL, {"text": text})
    # A record separator inside a message (iter_records glues it back): then some \x1e is
    # not followed by a hash and \x1f, so a piece of the split is empty or does not start
    # with a hash. Checked on the split records: Python's regex over the text cost a tenth
    # of the parse's CPU.
    row = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE NOT regexp_full_match(hash, '[0-9a-f]{{40,64}}')"
        f" OR n_fields < 2) FROM {STAGED_RECORDS}"
    ).fetchone()
    if not text.startswith("\x1e") or not row or row[0] != text.count("\x1e") or row[1]:
        return None
    con.execute(_STAGE_FILES_SQL)
    con.execute(_STAGE_COMMITS_SQL)
    row = con.execute(
        f"""SELECT (SELECT count(*) FROM {STAGED_COMMITS}),
                   (SELECT count(*) FROM {STAGED_COMMITS} WHERE suspect),
                   (SELECT count(*) + count(old_path) * 2 FROM {STAGED_FILES})"""
    ).fetchone()
    # Every NUL ends a record or a numstat token (headers cannot hold one): any other
    # means an entry the pattern skipped, which the Python parser refuses.
    nuls = text.count("\0")
    if row and not row[1] and nuls in (row[0] + row[2], row[0] + row[2] - 1):
        return int(row[0])
    return None


def _stage_with_python(con: Any, data: bytes) -> int:
    """The reference parser, for the chunks SQL leaves alone; raises on malformed records."""
    import pandas as pd

    batch = ColumnBatch()
    for record in iter_records([data]):
        batch.add(record)
    commits = pd.DataFrame(
        {c: pd.Series(batch.commits[c], dtype=object) for c in batch.COMMIT_COLUMNS}
    )
    f = batch.files
    files = pd.DataFrame(
        {
            "commit_hash": pd.Series(f["commit_hash"], dtype=object),
            "path": pd.Series(f["path"], dtype=object),
            "old_path": pd.Series(f["old_path"], dtype=object),
            "is_binary": pd.Series(f["is_binary"], dtype=bool),
            "insertions": pd.Series(f["insertions"], dtype="Int64"),
            "deletions": pd.Series(f["deletions"], dtype="Int64"),
        }
    )
    con.register("py_commits", commits)
    con.register("py_files", files)
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {STAGED_COMMITS} AS
            SELECT hash::VARCHAR AS hash, author_name::VARCHAR AS author_name,
                   author_email::VARCHAR AS author_email, committer_name::VARCHAR AS committer_name,
                   committer_email::VARCHAR AS committer_email,
                   authored_epoch::BIGINT AS authored_epoch, author_offset::INTEGER AS author_offset,
                   committed_epoch::BIGINT AS committed_epoch,
                   committer_offset::INTEGER AS committer_offset, parents::VARCHAR AS parents,
                   parent_count::INTEGER AS parent_count, subject::VARCHAR AS subject,
                   body::VARCHAR AS body, files_changed::INTEGER AS files_changed,
                   insertions::BIGINT AS insertions, deletions::BIGINT AS deletions,
                   binary_files::INTEGER AS binary_files, is_bot::BOOLEAN AS is_bot,
                   false AS suspect
            FROM py_commits
            """
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {STAGED_FILES} AS
            SELECT commit_hash::VARCHAR AS commit_hash, path::VARCHAR AS path,
                   old_path::VARCHAR AS old_path, is_binary, insertions::BIGINT AS insertions,
                   deletions::BIGINT AS deletions
            FROM py_files
            """
        )
    finally:
        con.unregister("py_commits")
        con.unregister("py_files")
    return len(batch)


def iter_chunks(chunks: Iterable[bytes], target_bytes: int) -> Iterator[bytes]:
    """Regroup a ``git log`` byte stream into pieces of whole records, about ``target_bytes`` each.

    A piece is cut just before a ``\\x1e`` that is followed by a hash and a field
    separator, as :func:`iter_records` splits, so no record straddles two pieces.
    """
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) < target_bytes:
            continue
        cut = _last_record_start(buf)
        if cut > 0:
            yield bytes(buf[:cut])
            del buf[:cut]
    if buf:
        yield bytes(buf)


def _last_record_start(buf: bytearray) -> int:
    end = len(buf)
    while (pos := buf.rfind(b"\x1e", 0, end)) > 0:
        if _BYTES_HASH_AT.match(buf, pos + 1):
            return pos
        end = pos
    return -1
