"""What a commit changed, in words a search can match: functions, identifiers, PR branch.

A commit message says what its author thought worth saying; the diff says what
changed. People search for the function they remember ("where did we change
``resolve_redirects``"), so per commit we keep:

* ``functions``: names of the functions/classes whose hunks changed, read from
  git's hunk headers (``@@ -12,3 +12,4 @@ def resolve_redirects(self, resp):``).
  git's built-in language drivers (python, golang, javascript, ...) are switched
  on through a private attributes file, so a method's hunk names the method
  rather than the enclosing class;
* ``identifiers``: identifiers that appear on added lines but on no removed
  line, or the reverse (renamed, introduced, deleted), at most
  ``MAX_IDENTIFIERS`` per commit, so a vendored drop cannot flood the index;
* per pull request (``search.change_groups``): the PR number and head branch
  of GitHub merge messages (``Merge pull request #N from owner/fix-retry``)
  and squash subjects (``Title (#N)``), and which commits each PR brought in.
  The branch name is often the best summary a change has.

Only the branch and PR number go into the commits' index terms, never the PR
title: a title is what people type as a query, and indexing it on the commits
would make history-trained weights learn from the answer key.

Git runs through ``GitRepository`` (the project's hardened invocation), with
``--no-ext-diff --no-textconv``: a repository's configured diff programs never run.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import pyarrow as pa

    from symbiotic_assets.git.repository import GitRepository
    from symbiotic_assets.search.index import CommitCorpus

CHANGE_TERMS_VERSION = 1
MAX_FUNCTIONS = 20
MAX_IDENTIFIERS = 40
MAX_DIFF_LINES = 4_000  # per commit; lines beyond are not read for identifiers
MIN_IDENTIFIER = 4

# git's built-in funcname drivers, switched on by file extension.
LANGUAGE_ATTRIBUTES = """\
*.py diff=python
*.pyi diff=python
*.go diff=golang
*.js diff=javascript
*.jsx diff=javascript
*.mjs diff=javascript
*.cjs diff=javascript
*.ts diff=javascript
*.tsx diff=javascript
*.rs diff=rust
*.java diff=java
*.kt diff=kotlin
*.rb diff=ruby
*.php diff=php
*.c diff=cpp
*.h diff=cpp
*.cc diff=cpp
*.cpp diff=cpp
*.hpp diff=cpp
*.cs diff=csharp
*.md diff=markdown
*.rst diff=markdown
"""

SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS search;
CREATE TABLE IF NOT EXISTS search.change_terms (
    repository VARCHAR NOT NULL,
    hash VARCHAR NOT NULL,
    functions VARCHAR[] NOT NULL,     -- functions/classes whose hunks changed
    identifiers VARCHAR[] NOT NULL,   -- identifiers added or removed (bounded)
    version INTEGER NOT NULL,         -- CHANGE_TERMS_VERSION
    PRIMARY KEY (repository, hash)
);
CREATE TABLE IF NOT EXISTS search.change_groups (
    repository VARCHAR NOT NULL,
    group_hash VARCHAR NOT NULL,      -- the PR's merge commit, or the squash commit itself
    pr_number INTEGER,
    branch VARCHAR,                   -- head branch of a merged PR; NULL for squash merges
    title VARCHAR,                    -- PR title where the history records it
    commit_hash VARCHAR NOT NULL,     -- one non-merge commit the PR brought in
    PRIMARY KEY (repository, group_hash, commit_hash)
);
"""

_DEF_RE = re.compile(
    r"\b(?:def|class|func|function|fn|struct|interface|type|module|impl|trait|enum|"
    r"public|private|protected|static|async)\s+(?:\([^)]*\)\s*)?\*?([A-Za-z_$][\w$]*)"
)
_CALLISH_RE = re.compile(r"([A-Za-z_$][\w$]*)\s*(?:=\s*(?:async\s*)?(?:function\b|\()|\()")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = frozenset(
    [
        "self",
        "this",
        "None",
        "True",
        "False",
        "true",
        "false",
        "null",
        "nil",
        "return",
        "import",
        "from",
        "async",
        "await",
        "const",
        "static",
        "public",
        "private",
        "protected",
        "class",
        "def",
        "func",
        "function",
        "while",
        "elif",
        "else",
        "string",
        "bool",
        "float",
        "void",
        "int32",
        "int64",
        "uint8",
        "error",
        "return",
        "self_",
        "assert",
        "raise",
        "except",
        "pass",
        "break",
        "continue",
        "yield",
        "lambda",
        "typeof",
        "instanceof",
        "export",
        "default",
        "package",
        "struct",
        "interface",
        "import",
        "include",
        "define",
        "ifdef",
        "endif",
    ]
)
MERGE_RE = re.compile(r"^Merge pull request #(\d+) from (\S+)")
SQUASH_RE = re.compile(r"^(.*\S)\s+\(#(\d+)\)$")


@dataclass
class CommitChange:
    """Functions and identifiers one commit changed."""

    hash: str
    functions: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)


def hunk_function(header: str) -> str | None:
    """The function or class a hunk header names (``def send(self):`` -> ``send``)."""
    m = _DEF_RE.search(header)
    if m:
        return m.group(1)
    m = _CALLISH_RE.search(header)
    if m and m.group(1) not in _KEYWORDS:
        return m.group(1)
    return None


# Over text where every line follows a newline: a pattern that starts with b"\n" is
# searched for that byte, several times faster than ``^`` tried at every position.
_HUNK_RE = re.compile(rb"\n@@[^\n]*?@@([^\n]*)")  # the text after a hunk's closing @@
_DIFF_LINE_RE = re.compile(rb"\n(?!\+\+\+|---)([+-][^\n]*)")  # not the ---/+++ file lines
# identifiers of MIN_IDENTIFIER or more characters; a shorter maximal run of identifier
# characters has no substring this matches, so the tokens are those of _IDENT_RE, filtered
_LONG_IDENT_RE = re.compile(rb"[A-Za-z_][A-Za-z0-9_]{%d,}" % (MIN_IDENTIFIER - 1))
_KEYWORD_BYTES = frozenset(k.encode() for k in _KEYWORDS)


class _PatchReader:
    """One commit's functions and identifiers, fed whole lines of its patch in pieces.

    Why pieces, not lines: a per-line Python loop cost more than git's own ``log -p``
    (click: 0.8 s against 0.5 s); regular expressions over a piece do the same work in C.
    """

    def __init__(self, hash_: str) -> None:
        self.change = CommitChange(hash_)
        self.added: dict[bytes, None] = {}
        self.removed: dict[bytes, None] = {}
        self.diff_lines = 0

    def feed(self, piece: bytes) -> None:
        functions = self.change.functions
        if len(functions) < MAX_FUNCTIONS:
            for raw in _HUNK_RE.findall(piece):
                header = raw.decode("utf-8", "replace").strip()
                name = hunk_function(header) if header else None
                if name and name not in functions and len(functions) < MAX_FUNCTIONS:
                    functions.append(name)
        if self.diff_lines >= MAX_DIFF_LINES:
            return
        lines = _DIFF_LINE_RE.findall(piece)
        lines = lines[: MAX_DIFF_LINES - self.diff_lines]
        self.diff_lines += len(lines)
        plus = b"\n".join([ln for ln in lines if ln[:1] == b"+"])
        minus = b"\n".join([ln for ln in lines if ln[:1] == b"-"])
        # dict.update keeps the first-seen order of new keys, as setdefault one by one would
        self.added.update(dict.fromkeys(_LONG_IDENT_RE.findall(plus)))
        self.removed.update(dict.fromkeys(_LONG_IDENT_RE.findall(minus)))

    def finish(self) -> CommitChange:
        added = [i for i in self.added if i not in self.removed and i not in _KEYWORD_BYTES]
        removed = [i for i in self.removed if i not in self.added and i not in _KEYWORD_BYTES]
        changed = (added + removed)[:MAX_IDENTIFIERS]
        self.change.identifiers = [i.decode("ascii") for i in changed]
        return self.change


def parse_patch_log(chunks: Iterable[bytes]) -> Iterator[CommitChange]:
    """Read ``git log -p -U0 --format=%x00%H`` output (chunks of any size) into changes.

    Per commit: up to ``MAX_FUNCTIONS`` distinct hunk-header names in order, and the
    identifiers on the first ``MAX_DIFF_LINES`` added/removed lines that appear only on
    one side (added ones first), at most ``MAX_IDENTIFIERS``. Output before the first
    commit line is ignored. Memory stays at one chunk plus one line, whatever a commit's size.
    """
    reader: _PatchReader | None = None
    buf = bytearray()
    for chunk in chunks:
        searched = len(buf)
        buf += chunk
        cut = buf.rfind(b"\n", searched)
        if cut < 0:
            continue
        piece = bytes(buf[: cut + 1])
        del buf[: cut + 1]
        reader, done = _read_piece(piece, reader)
        yield from done
    if buf:
        reader, done = _read_piece(bytes(buf), reader)
        yield from done
    if reader is not None:
        yield reader.finish()


def _read_piece(
    piece: bytes, reader: _PatchReader | None
) -> tuple[_PatchReader | None, list[CommitChange]]:
    """Feed whole lines to the current commit's reader, starting a new one at each commit line.

    Returns the reader current at the end of ``piece`` and the commits it completed.
    """
    data = b"\n" + piece  # every line, the first included, follows a newline
    done: list[CommitChange] = []
    at = 0  # data[at] is the newline before the next line not read yet
    while (mark := data.find(b"\n\x00", at)) >= 0:  # --format=%x00%H: a commit's line
        if reader is not None:
            if mark > at:
                reader.feed(data[at:mark])
            done.append(reader.finish())
        end = data.find(b"\n", mark + 1)
        end = len(data) if end < 0 else end
        reader = _PatchReader(data[mark + 2 : end].strip().decode("ascii", "replace"))
        at = end
    if reader is not None and at < len(data):
        reader.feed(data[at:])
    return reader, done


def read_changes(repo: GitRepository, hashes: Sequence[str]) -> Iterator[CommitChange]:
    """Changes of the given non-merge commits (merges have no diff of their own here).

    git runs in a scratch repository that reads ``repo``'s objects and nothing else of
    it (``scratch_repository``): no work-tree ``.gitattributes``, no repository config
    (a ``diff.*.xfuncname`` of its choosing), only our attributes file. So a commit's
    terms depend on the commit alone, and another repository holding the same commit
    may lend them (``shared_history.reuse_change_terms``).
    """
    if not hashes:
        return
    from symbiotic_assets.git.repository import scratch_repository

    with (
        tempfile.TemporaryDirectory(prefix="symbiotic-attrs-") as tmp,
        scratch_repository(repo) as scratch,
    ):
        attributes = Path(tmp) / "attributes"
        attributes.write_text(LANGUAGE_ATTRIBUTES, encoding="utf-8")
        args = [
            "--git-dir", str(scratch),
            "-c", f"core.attributesFile={attributes}",
            "log", "--no-walk=unsorted", "--stdin", "--no-ext-diff", "--no-textconv",
            "--no-color", "-p", "-U0", "--no-renames", "--format=%x00%H",
        ]  # fmt: skip
        yield from parse_patch_log(repo.stream(args, stdin_lines=list(hashes)))


@dataclass
class ChangeGroup:
    group_hash: str
    pr_number: int | None
    branch: str | None
    title: str | None
    commits: list[str]


# One ``git rev-list`` process costs about as much as walking this many commits in Python:
# a stretch of history is walked only when the merges it settles pay for the walk.
COMMITS_PER_GIT_CALL = 10_000


def _reachable(parents: dict[str, list[str]], start: str | None) -> set[str]:
    seen: set[str] = set()
    stack = [start] if start is not None else []
    while stack:
        x = stack.pop()
        if x in seen or x not in parents:
            continue
        seen.add(x)
        stack.extend(parents[x])
    return seen


def merge_members(
    parents: dict[str, list[str]],
    is_merge: dict[str, bool],
    tips: Sequence[str],
    wanted: Collection[str] | None = None,
) -> dict[str, list[str]]:
    """For two-parent merges, the non-merge commits each brought in, from the graph alone.

    The same answer as ``git rev-list --no-merges P2 ^P1`` per merge, without one git
    process per merge (thousands in a large repository). Each tip's first-parent chain
    is followed down to the first commit an earlier chain passed (the junction); walking
    that new stretch back up, ``seen`` holds everything reachable from the current chain
    commit, and a merge's members are what its other parents reach outside ``seen``.
    ``wanted`` (default: every merge on the chains) limits which merges are answered; a
    wanted merge on no tip's chain (a PR merged into a branch that was merged in turn)
    is a tip of its own. A stretch above a junction is walked only when its wanted merges
    outweigh the walk (``COMMITS_PER_GIT_CALL``); the caller asks git for the rest.
    """
    want = set(wanted) if wanted is not None else None
    out: dict[str, list[str]] = {}
    charted: set[str] = set()
    for tip in [*tips, *(wanted or ())]:
        stretch: list[str] = []
        c: str | None = tip
        while c is not None and c in parents and c not in charted:
            stretch.append(c)
            charted.add(c)
            c = parents[c][0] if parents[c] else None
        todo = sum(1 for x in stretch if len(parents[x]) == 2 and (want is None or x in want))
        if not todo:
            continue
        if c is not None and todo * COMMITS_PER_GIT_CALL < len(parents):
            continue  # cheaper in git, one merge at a time
        seen = _reachable(parents, c)
        for x in reversed(stretch):
            ps = parents[x]
            if len(ps) >= 2:  # an octopus's other parents are reachable too
                members: list[str] = []
                stack = list(ps[1:])
                while stack:
                    y = stack.pop()
                    if y in seen or y not in parents:
                        continue
                    seen.add(y)
                    if not is_merge.get(y, False):
                        members.append(y)
                    stack.extend(parents[y])
                if len(ps) == 2 and (want is None or x in want):
                    out[x] = members
            seen.add(x)
    return out


def mainline_members(
    parents: dict[str, list[str]], is_merge: dict[str, bool], head: str
) -> dict[str, list[str]]:
    """For each merge on ``head``'s first-parent chain, the non-merge commits it brought in."""
    return merge_members(parents, is_merge, [head])


def read_groups(
    repo: GitRepository,
    merges: Sequence[tuple[str, str, str | None, list[str]]],
    known: dict[str, list[str]] | None = None,
) -> list[ChangeGroup]:
    """PR groups from (hash, subject, body, parents) of candidate merge/squash commits.

    ``known`` holds the members the graph settled (``merge_members``); other merges
    ask git.
    """
    groups: list[ChangeGroup] = []
    for commit, subject, body, parents in merges:
        m = MERGE_RE.match(subject or "")
        if m and len(parents) == 2:
            if known is not None and commit in known:
                members = known[commit]
            else:
                out = repo.text(["rev-list", "--no-merges", parents[1], f"^{parents[0]}", "--"])
                members = out.split()
            lines = [ln.strip() for ln in (body or "").splitlines() if ln.strip()]
            title = lines[0] if lines else None
            if members:
                groups.append(ChangeGroup(commit, int(m.group(1)), m.group(2), title, members))
            continue
        s = SQUASH_RE.match(subject or "")
        if s and len(parents) == 1:
            groups.append(ChangeGroup(commit, int(s.group(2)), None, s.group(1), [commit]))
    return groups


def branch_words(branch: str | None) -> str:
    """``alice/fix-retry-backoff`` -> ``fix retry backoff`` (the owner is not a topic)."""
    if not branch:
        return ""
    name = branch.split("/", 1)[1] if "/" in branch else branch
    return " ".join(re.split(r"[-_/.]+", name)).strip()


@dataclass(frozen=True)
class ChangeTermsResult:
    repository: str
    commits: int  # commits whose diffs git read this run
    groups: int  # PR groups found this run
    seconds: float
    reused_commits: int = 0  # change terms copied from repositories holding the same commits
    reused_group_rows: int = 0  # PR group rows (one per member commit) copied likewise


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA_SQL)


def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    """Insert typed columns in one statement (``executemany`` took 1.4 s for click's 3,000 rows)."""
    con.register("_change_rows_new", rows)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM _change_rows_new ON CONFLICT DO NOTHING")
    finally:
        con.unregister("_change_rows_new")


def _group_tips(con: duckdb.DuckDBPyConnection, repository: str) -> list[str]:
    """HEAD at extraction, then every ref's tip, newest first: the chains to walk for groups."""
    rows = con.execute(
        """
        SELECT tip FROM (
            SELECT head_hash AS tip, 0 AS rank, NULL::TIMESTAMP AS tip_at
            FROM git.repositories WHERE repository = $repo AND head_hash IS NOT NULL
            UNION ALL
            SELECT tip_hash, CASE WHEN is_default THEN 1 WHEN ref_type = 'tag' THEN 3 ELSE 2 END,
                   tip_committed_at
            FROM git.refs WHERE repository = $repo AND tip_hash IS NOT NULL
        ) ORDER BY rank, tip_at DESC NULLS LAST, tip
        """,
        {"repo": repository},
    ).fetchall()
    return list(dict.fromkeys(r[0] for r in rows))


def refresh_change_terms(
    con: duckdb.DuckDBPyConnection,
    repo: GitRepository,
    repository: str,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 2_000,
) -> ChangeTermsResult:
    """Read the changes of reachable commits not read yet, and the PR groups of new merges.

    Incremental and idempotent: a commit already in ``search.change_terms`` (same
    version) is not read again; rows are inserted with ``ON CONFLICT DO NOTHING``.
    What another repository already holds for the same commit ids (a fork, a clone) is
    copied first (``shared_history``), so git reads only the commits nobody has.
    """
    import pyarrow as pa

    from symbiotic_assets.git.shared_history import reuse_change_groups, reuse_change_terms

    started = time.perf_counter()
    ensure_schema(con)
    con.execute(
        "DELETE FROM search.change_terms WHERE repository = ? AND version <> ?",
        [repository, CHANGE_TERMS_VERSION],
    )
    reused = reuse_change_terms(con, repository, CHANGE_TERMS_VERSION)
    todo = [
        r[0]
        for r in con.execute(
            """
            SELECT c.hash FROM git.commits c
            WHERE c.repository = ? AND c.is_reachable AND NOT c.is_merge
              AND NOT EXISTS (SELECT 1 FROM search.change_terms t WHERE t.repository = c.repository
                              AND t.hash = c.hash AND t.version = ?)
            ORDER BY c.authored_at, c.hash
            """,
            [repository, CHANGE_TERMS_VERSION],
        ).fetchall()
    ]
    words = pa.list_(pa.string())

    def write(part: list[CommitChange]) -> None:
        table = pa.table(
            {
                "repository": pa.array([repository] * len(part), pa.string()),
                "hash": pa.array([c.hash for c in part], pa.string()),
                "functions": pa.array([c.functions for c in part], words),
                "identifiers": pa.array([c.identifiers for c in part], words),
                "version": pa.array([CHANGE_TERMS_VERSION] * len(part), pa.int32()),
            }
        )
        _insert(con, "search.change_terms", table)
        if progress is not None:
            progress(len(read), len(todo))

    # one git process for all of them; rows are written every ``chunk`` commits
    read: set[str] = set()
    part: list[CommitChange] = []
    for change in read_changes(repo, todo):
        if change.hash in read:
            continue
        read.add(change.hash)
        part.append(change)
        if len(part) >= chunk:
            write(part)
            part = []
    # a commit git printed nothing for (it has no diff) still counts as read
    part += [CommitChange(h) for h in todo if h not in read]
    read.update(todo)
    if part:
        write(part)
    reused_groups = reuse_change_groups(con, repository)
    candidates = con.execute(
        """
        SELECT c.hash, c.subject, c.body, c.parent_hashes FROM git.commits c
        WHERE c.repository = ? AND c.is_reachable
          AND (c.subject LIKE 'Merge pull request #%' OR regexp_matches(c.subject, '\\(#\\d+\\)$'))
          AND NOT EXISTS (SELECT 1 FROM search.change_groups g
                          WHERE g.repository = c.repository AND g.group_hash = c.hash)
        """,
        [repository],
    ).fetchall()
    merges = [(r[0], r[1], r[2], list(r[3] or [])) for r in candidates]
    wanted = [m[0] for m in merges if len(m[3]) == 2 and MERGE_RE.match(m[1] or "")]
    known: dict[str, list[str]] = {}
    if wanted:
        graph = con.execute(
            "SELECT hash, parent_hashes, is_merge FROM git.commits "
            "WHERE repository = ? AND is_reachable",
            [repository],
        ).fetchall()
        known = merge_members(
            {g[0]: list(g[1] or []) for g in graph},
            {g[0]: bool(g[2]) for g in graph},
            _group_tips(con, repository),
            wanted,
        )
    groups = read_groups(repo, merges, known)
    rows = [
        (repository, g.group_hash, g.pr_number, g.branch, g.title, h)
        for g in groups
        for h in g.commits
    ]
    if rows:
        columns = list(zip(*rows, strict=True))
        types = [pa.string(), pa.string(), pa.int32(), pa.string(), pa.string(), pa.string()]
        names = ["repository", "group_hash", "pr_number", "branch", "title", "commit_hash"]
        _insert(con, "search.change_groups", pa.table(
            [pa.array(col, t) for col, t in zip(columns, types, strict=True)], names=names))  # fmt: skip
    return ChangeTermsResult(
        repository, len(todo), len(groups), time.perf_counter() - started, reused, reused_groups
    )


def change_text(functions: Sequence[str], identifiers: Sequence[str], branches: Sequence[str], prs: Sequence[int]) -> str:  # fmt: skip
    """The words a commit's change adds to its index terms (see the module docstring)."""
    parts = [*functions, *identifiers, *(branch_words(b) for b in branches)]
    parts += [f"#{n}" for n in prs]
    return " ".join(p for p in parts if p)


def change_texts(
    con: duckdb.DuckDBPyConnection, hashes: Sequence[str], repositories: Sequence[str]
) -> list[str]:
    """Per commit, the words its change adds to its index terms ('' when not read yet)."""
    ensure_schema(con)
    rows = con.execute(
        """
        WITH g AS (
            SELECT repository, commit_hash,
                   list(DISTINCT branch) FILTER (WHERE branch IS NOT NULL) AS branches,
                   list(DISTINCT pr_number) FILTER (WHERE pr_number IS NOT NULL) AS prs
            FROM search.change_groups GROUP BY ALL
        )
        SELECT coalesce(t.repository, g.repository), coalesce(t.hash, g.commit_hash),
               coalesce(t.functions, []), coalesce(t.identifiers, []),
               coalesce(g.branches, []), coalesce(g.prs, [])
        FROM search.change_terms t
        FULL OUTER JOIN g ON g.repository = t.repository AND g.commit_hash = t.hash
        """
    ).fetchall()
    extra = {(r[0], r[1]): change_text(r[2], r[3], r[4], r[5]) for r in rows}
    return [extra.get((repo, h), "") for h, repo in zip(hashes, repositories, strict=True)]


def with_change_terms(con: duckdb.DuckDBPyConnection, corpus: CommitCorpus) -> CommitCorpus:
    """``corpus`` whose index texts also carry each commit's change terms.

    Only the lexical index reads ``texts`` at publish time (vectors were embedded
    from the commit text alone), so this widens what BM25 matches without
    re-embedding anything. Commits not read yet keep their text unchanged.
    """
    import dataclasses

    extra = change_texts(con, corpus.hashes, corpus.repositories)
    texts = [f"{t}\n{x}" if x else t for t, x in zip(corpus.texts, extra, strict=True)]
    return dataclasses.replace(corpus, texts=texts)


def change_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """Changes whenever ``change_texts`` may change: row counts of both tables."""
    ensure_schema(con)
    row = con.execute(
        "SELECT (SELECT count(*) FROM search.change_terms), "
        "(SELECT count(*) FROM search.change_groups)"
    ).fetchone()
    return f"changes:{row[0]}:{row[1]}" if row else "changes:0:0"


# --------------------------------------------------------------------------- published groups
GROUPS_WHAT = "change groups"


@dataclass
class PublishedGroups:
    """PR groups as readers see them: which change each commit belongs to."""

    groups: list[ChangeGroupInfo]
    of_commit: dict[tuple[str, str], int]  # (repository, commit hash) -> index in groups
    version: str = ""

    def group_of(self, repository: str, commit: str) -> ChangeGroupInfo | None:
        i = self.of_commit.get((repository, commit))
        return self.groups[i] if i is not None else None


@dataclass(frozen=True)
class ChangeGroupInfo:
    repository: str
    group_hash: str
    pr_number: int | None
    branch: str | None
    title: str | None


def publish_groups(con: duckdb.DuckDBPyConnection, root: Path) -> str:
    """Write every PR group of the warehouse as a new published version under ``root``.

    A commit brought in by two PRs (a backport, a re-merged branch) belongs to the
    older one, so each commit is shown once.
    """
    import json

    from symbiotic_assets.core.publish import publish_version

    ensure_schema(con)
    rows = con.execute(
        """
        SELECT g.repository, g.group_hash, any_value(g.pr_number), any_value(g.branch),
               any_value(g.title), list(g.commit_hash ORDER BY g.commit_hash),
               min(c.committed_at) AS merged_at
        FROM search.change_groups g
        LEFT JOIN git.commits c ON c.repository = g.repository AND c.hash = g.group_hash
        GROUP BY g.repository, g.group_hash
        ORDER BY merged_at NULLS LAST, g.repository, g.group_hash
        """
    ).fetchall()
    data = {
        "groups": [[r[0], r[1], r[2], r[3], r[4]] for r in rows],
        "members": [r[5] for r in rows],
    }

    def write(folder: Path, version: str) -> None:
        folder.mkdir(parents=True)
        (folder / "groups.json").write_text(json.dumps(data), encoding="utf-8")

    return publish_version(root, write)


def _current(root: Path) -> str:
    from symbiotic_assets.core.publish import current_version

    return current_version(root, what=GROUPS_WHAT, hint="materialize search/change_terms first")


def load_groups(root: Path) -> PublishedGroups:
    """The published groups the pointer under ``root`` names."""
    import json

    version = _current(root)
    data = json.loads((root / "versions" / version / "groups.json").read_text(encoding="utf-8"))
    groups = [ChangeGroupInfo(*g) for g in data["groups"]]
    of_commit: dict[tuple[str, str], int] = {}
    for i, (g, members) in enumerate(zip(groups, data["members"], strict=True)):
        for h in members:
            of_commit.setdefault((g.repository, h), i)
    return PublishedGroups(groups, of_commit, version)


def history_queries(
    con: duckdb.DuckDBPyConnection, per_repository: int = 1_000
) -> list[tuple[str, str, frozenset[str]]]:
    """(repository, PR title, its commits) of the newest merged PRs of every repository.

    The ranker learns from these before anyone clicked (``ranker.learn_from_history``);
    at most ``per_repository`` per repository, so one large repository does not
    decide the weights for all.
    """
    ensure_schema(con)
    rows = con.execute(
        """
        WITH g AS (
            SELECT g.repository, g.group_hash, any_value(g.title) AS title,
                   list(g.commit_hash) AS commits, any_value(c.committed_at) AS merged_at
            FROM search.change_groups g
            JOIN git.commits c ON c.repository = g.repository AND c.hash = g.group_hash
            WHERE g.title IS NOT NULL AND length(trim(g.title)) > 0 AND c.is_reachable
            GROUP BY g.repository, g.group_hash
        )
        SELECT repository, title, commits FROM (
            SELECT *, row_number() OVER (PARTITION BY repository ORDER BY merged_at DESC, group_hash)
                   AS n FROM g
        ) WHERE n <= ? ORDER BY repository, merged_at, group_hash
        """,
        [per_repository],
    ).fetchall()
    return [(r[0], r[1], frozenset(r[2])) for r in rows]
