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

LOG_FORMAT = "%x1e%H%x1f%P%x1f%aN%x1f%aE%x1f%ad%x1f%cN%x1f%cE%x1f%cd%x1f%B%x1d"
LOG_ARGS = ["-z", "--numstat", "-M", "--date=raw", "--use-mailmap", f"--format={LOG_FORMAT}"]

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
