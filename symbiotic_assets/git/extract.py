"""Incremental, idempotent extraction of one repository's history into the warehouse.

The unit of work is one repository. ``refresh_repository`` streams a single
``git log`` over the commits that are reachable now and were not reachable
from the tips stored last time, writes them in chunks as they are parsed,
marks commits that a rewrite left behind, snapshots refs and reads the
reflog. When no tip, no symbolic HEAD and no reflog changed, it returns
after one ``for-each-ref`` without touching the warehouse.

DuckDB parses the ``git log`` pieces (``log_parser.stage_chunk``): in Python the
parse cost as much CPU as git. A repository that lacks objects (partial clone,
damaged pack) is read the way ``missing.py`` describes: complete commits, refs
and reflog, and NULL churn where git cannot compute a diff.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from symbiotic_assets.core.config import RepositorySpec
from symbiotic_assets.core.schema import ensure_git_schema
from symbiotic_assets.core.warehouse import connect
from symbiotic_assets.git.log_parser import HEADER_ARGS, LOG_ARGS, iter_chunks, stage_chunk
from symbiotic_assets.git.missing import is_partial_clone, plan_readable
from symbiotic_assets.git.reflog import RefEvent, parse_reflogs
from symbiotic_assets.git.repository import GitRepository, Ref, RepositoryError

ProgressFn = Callable[[int], None]
DEFAULT_BRANCH_CANDIDATES = ("main", "master", "trunk", "develop")
# bytes of git log output per transaction: about 25,000 commits of a typical history
CHUNK_BYTES = 8 << 20


@dataclass
class RefreshResult:
    repository: str
    repository_path: str
    noop: bool
    new_commits: int = 0
    reachable_again: int = 0
    now_unreachable: int = 0
    new_files: int = 0
    reachable_commits: int = 0
    refs: int = 0
    new_ref_events: int = 0
    deleted_branches: list[str] = field(default_factory=list)
    has_reflog: bool = False
    is_shallow: bool = False
    default_branch: str | None = None
    seconds: float = 0.0
    # commits stored this run whose diff git could not compute (churn NULL, not 0)
    churn_unknown: int = 0
    missing_objects: int = 0  # objects the repository lacks (partial or damaged clone)
    degraded_reason: str = ""


# ---------------------------------------------------------------------------------------
# helpers


def history_tips(refs: Sequence[Ref], head_hash: str | None) -> list[str]:
    """Commits whose ancestry is 'the history': branches, remote branches, tags and HEAD.

    Stashes, notes and filter-branch backups (refs/stash, refs/notes, refs/original)
    are not history and are left out.
    """
    tips = {r.tip_hash for r in refs if r.tip_hash}
    if head_hash:
        tips.add(head_hash)
    return sorted(tips)


def choose_default_branch(
    refs: Sequence[Ref], configured: str | None, head_ref: str | None
) -> str | None:
    branches = {r.short_name for r in refs if r.ref_type == "branch"}
    remotes = {r.short_name: r for r in refs if r.ref_type == "remote_branch"}
    if configured:
        return configured
    origin_head = remotes.get("origin/HEAD")
    if origin_head and origin_head.symref:
        target = origin_head.symref.removeprefix("refs/remotes/origin/")
        if target in branches:
            return target
        return f"origin/{target}"
    for name in DEFAULT_BRANCH_CANDIDATES:
        if name in branches:
            return name
    if head_ref and head_ref.startswith("refs/heads/"):
        return head_ref[len("refs/heads/") :]
    return None


def fingerprint(repo: GitRepository, refs: Sequence[Ref], head_ref: str | None, head_hash: str | None,
                reflog_signature: str, default_branch: str | None) -> str:  # fmt: skip
    h = hashlib.sha1()
    h.update(
        f"{repo.path}\0{head_ref}\0{head_hash}\0{reflog_signature}\0{default_branch}\n".encode()
    )
    for r in sorted(refs, key=lambda r: r.ref_name):
        h.update(f"{r.ref_name}\0{r.tip_hash}\0{r.symref}\n".encode())
    return h.hexdigest()


def _write_commit_chunk(con: duckdb.DuckDBPyConnection, repository: str, data: bytes, fresh: bool = False, churn_known: bool = True) -> tuple[int, int, int, int]:  # fmt: skip
    """Parse one piece of ``git log`` output and store the commits not stored yet.

    Returns (commits in the piece, new commits, revived commits, new file rows). One
    transaction per piece, so an interrupted run leaves whole pieces, and the next run
    skips them. ``fresh`` (the repository had no stored commit when the run began, and
    git lists each commit once) skips the existence checks. ``churn_known=False``
    stores the commits with NULL churn and no file rows: git could not compute their
    diff, and unknown is not zero.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        parsed = stage_chunk(con, data)
        source = "chunk_commits c"
        if fresh:
            revived: tuple[Any, ...] | None = (0,)
        else:
            revived = con.execute(
                """
                UPDATE git.commits SET is_reachable = true, unreachable_since = NULL
                WHERE repository = ? AND NOT is_reachable
                  AND hash IN (SELECT hash FROM chunk_commits)
                """,
                [repository],
            ).fetchone()
            con.execute(
                """
                CREATE OR REPLACE TEMP TABLE chunk_new AS
                SELECT c.hash FROM chunk_commits c
                WHERE NOT EXISTS (SELECT 1 FROM git.commits x
                                  WHERE x.repository = ? AND x.hash = c.hash)
                """,
                [repository],
            )
            source += " SEMI JOIN chunk_new n ON c.hash = n.hash"
        churn = (
            "c.files_changed, c.insertions, c.deletions, c.binary_files"
            if churn_known
            else "NULL, NULL, NULL, NULL"
        )
        new = con.execute(
            f"""
            INSERT INTO git.commits
            SELECT ?, c.hash, c.author_name, c.author_email, c.committer_name, c.committer_email,
                   make_timestamp(c.authored_epoch * 1000000), c.author_offset,
                   make_timestamp(c.committed_epoch * 1000000), c.committer_offset,
                   CASE WHEN c.parents = '' THEN []::VARCHAR[] ELSE string_split(c.parents, ' ') END,
                   c.parent_count, c.parent_count >= 2, c.subject, c.body, {churn},
                   c.is_bot, true, NULL, now()::TIMESTAMP
            FROM {source}
            """,
            [repository],
        ).fetchone()
        files: tuple[Any, ...] | None = (0,)
        if churn_known:
            files = con.execute(
                f"""
                INSERT INTO git.commit_files
                SELECT ?, f.commit_hash, f.path, f.old_path, f.is_binary, f.insertions, f.deletions
                FROM chunk_files f
                {"" if fresh else "SEMI JOIN chunk_new n ON f.commit_hash = n.hash"}
                """,
                [repository],
            ).fetchone()
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return (
        parsed,
        int(new[0]) if new else 0,
        int(revived[0]) if revived else 0,
        int(files[0]) if files else 0,
    )


def _hash_frame(hashes: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame({"hash": pd.Series(list(hashes), dtype=object)})


def _mark_unreachable(
    con: duckdb.DuckDBPyConnection, repository: str, hashes: Iterable[str]
) -> int:
    con.register("gone", _hash_frame(hashes))
    try:
        row = con.execute(
            """
            UPDATE git.commits SET is_reachable = false, unreachable_since = now()::TIMESTAMP
            WHERE repository = ? AND is_reachable AND hash IN (SELECT hash FROM gone)
            """,
            [repository],
        ).fetchone()
    finally:
        con.unregister("gone")
    return int(row[0]) if row else 0


def _keep_only_reachable(
    con: duckdb.DuckDBPyConnection, repository: str, reachable: Iterable[str]
) -> int:
    con.register("alive", _hash_frame(reachable))
    try:
        row = con.execute(
            """
            UPDATE git.commits SET is_reachable = false, unreachable_since = now()::TIMESTAMP
            WHERE repository = ? AND is_reachable AND hash NOT IN (SELECT hash FROM alive)
            """,
            [repository],
        ).fetchone()
    finally:
        con.unregister("alive")
    return int(row[0]) if row else 0


def _ref_events_frame(events: Sequence[RefEvent], source: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_key": [e.event_key for e in events],
            "ref_name": [e.ref_name for e in events],
            "event_type": [e.event_type for e in events],
            "from_ref": pd.Series([e.from_ref for e in events], dtype=object),
            "to_ref": pd.Series([e.to_ref for e in events], dtype=object),
            "is_switch": pd.Series([e.is_switch for e in events], dtype=bool),
            "old_hash": [e.old_hash for e in events],
            "new_hash": [e.new_hash for e in events],
            "actor_name": [e.actor_name for e in events],
            "actor_email": [e.actor_email for e in events],
            "occurred_epoch": pd.Series([e.occurred_epoch for e in events], dtype="int64"),
            "utc_offset_minutes": pd.Series([e.utc_offset_minutes for e in events], dtype="int64"),
            "message": [e.message for e in events],
            "source": [source] * len(events),
        }
    )


def _insert_ref_events(con: duckdb.DuckDBPyConnection, repository: str, frame: pd.DataFrame) -> int:
    if frame.empty:
        return 0
    con.register("new_events", frame)
    try:
        row = con.execute(
            """
            INSERT INTO git.ref_events
            SELECT ?, e.event_key, e.ref_name, e.event_type, e.from_ref, e.to_ref, e.is_switch,
                   e.old_hash, e.new_hash, e.actor_name, e.actor_email,
                   make_timestamp(e.occurred_epoch * 1000000), e.utc_offset_minutes, e.message, e.source
            FROM new_events e
            WHERE NOT EXISTS (SELECT 1 FROM git.ref_events x
                              WHERE x.repository = ? AND x.event_key = e.event_key)
            """,
            [repository, repository],
        ).fetchone()
    finally:
        con.unregister("new_events")
    return int(row[0]) if row else 0


# ---------------------------------------------------------------------------------------
# the three steps


def _stream_into_warehouse(
    con: duckdb.DuckDBPyConnection,
    repository: str,
    pieces: Iterable[bytes],
    result: RefreshResult,
    progress: ProgressFn | None,
    fresh: bool,
    churn_known: bool = True,
) -> None:
    """Write pieces on a second thread while this one keeps reading git's pipe.

    DuckDB parses and inserts with the GIL released, so git never stalls on a full
    pipe while a piece is written; at most two pieces are held in memory at once.
    When the stream fails (git died), the piece already handed over is still
    counted before the error goes on: it was committed.
    """

    def account(future: Future[tuple[int, int, int, int]]) -> None:
        parsed, n, r, f = future.result()
        result.new_commits += n
        result.reachable_again += r
        result.new_files += f
        if not churn_known:
            result.churn_unknown += n
        if progress:
            progress(parsed)

    pending: Future[tuple[int, int, int, int]] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="warehouse-writer") as writer:
        try:
            for piece in pieces:
                if pending:
                    account(pending)
                pending = writer.submit(
                    _write_commit_chunk, con, repository, piece, fresh, churn_known
                )
        except BaseException:
            if pending:
                with contextlib.suppress(Exception):
                    account(pending)
            raise
        if pending:
            account(pending)


def _extract_readable(
    con: duckdb.DuckDBPyConnection,
    repo: GitRepository,
    revs: Sequence[str],
    result: RefreshResult,
    progress: ProgressFn | None,
    chunk_bytes: int,
    failure: RepositoryError | None,
) -> None:
    """Store what git can read of ``revs`` in a repository that lacks some objects.

    Commits whose diff needs a missing object are stored with unknown churn; the
    others exactly as the single ``git log`` would store them. ``failure`` is the
    error of that ``git log``, raised again when nothing is missing after all.
    """
    plan = plan_readable(repo, revs)
    if failure is not None and not plan.missing_objects:
        raise failure
    result.missing_objects = plan.missing_objects
    result.degraded_reason = plan.reason
    for hashes, args, known in (
        (plan.readable, LOG_ARGS, True),
        (plan.unreadable, HEADER_ARGS, False),
    ):
        if not hashes:  # an empty --no-walk list would mean HEAD
            continue
        stream = repo.stream(["log", "--no-walk=unsorted", *args, "--stdin"], stdin_lines=hashes)
        _stream_into_warehouse(
            con, repo.name, iter_chunks(stream, chunk_bytes), result, progress, False, known
        )


def refresh_repository(
    warehouse: str | Path,
    spec: RepositorySpec,
    *,
    progress: ProgressFn | None = None,
    total_hint: Callable[[int], None] | None = None,
    chunk_commits: int = 5_000,
    force: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
) -> RefreshResult:
    """Bring the warehouse's copy of one repository's history up to date.

    ``git log`` output is written in pieces of about ``chunk_bytes`` (one transaction
    each); ``chunk_commits`` is kept for callers and no longer used. A repository that
    lacks objects (partial clone, damaged pack) degrades: see ``missing.py``.
    """
    del chunk_commits
    started = time.perf_counter()
    repo = GitRepository.open(spec.name, spec.path)
    # git log flushes stdout after every commit when it writes to a pipe: one write and
    # one read of a few hundred bytes per commit. Fully buffered, it writes whole pages.
    repo.env["GIT_FLUSH"] = "0"
    head_ref, head_hash = repo.head()
    refs = repo.refs()
    shallow = repo.is_shallow()
    reflog_files = repo.reflog_files()
    default_branch = choose_default_branch(refs, spec.default_branch, head_ref)
    fp = fingerprint(
        repo, refs, head_ref, head_hash, repo.reflog_signature(reflog_files), default_branch
    )
    tips = history_tips(refs, head_hash)
    result = RefreshResult(
        repository=spec.name,
        repository_path=str(repo.path),
        noop=False,
        has_reflog=bool(reflog_files),
        is_shallow=shallow,
        default_branch=default_branch,
    )

    with connect(warehouse) as con:
        ensure_git_schema(con)
        prev = con.execute(
            "SELECT refs_fingerprint, head_hash FROM git.repositories WHERE repository = ?",
            [spec.name],
        ).fetchone()
        if prev and prev[0] == fp and not force:
            result.noop = True
            row = con.execute(
                "SELECT commit_count FROM git.repositories WHERE repository = ?", [spec.name]
            ).fetchone()
            result.reachable_commits = int(row[0] or 0) if row else 0
            result.refs = len(refs)
            result.seconds = time.perf_counter() - started
            return result
        prev_refs = con.execute(
            "SELECT ref_name, ref_type, tip_hash FROM git.refs WHERE repository = ?", [spec.name]
        ).fetchall()
        stored = con.execute(
            "SELECT count(*) FROM git.commits WHERE repository = ?", [spec.name]
        ).fetchone()
        has_stored = bool(stored and stored[0])

    old_tips = sorted(
        {t for _, _, t in prev_refs if t} | ({prev[1]} if prev and prev[1] else set())
    )
    old_present = repo.existing_commits(old_tips) if has_stored else set()
    old_missing = [t for t in old_tips if t not in old_present]

    # 1. new commits: reachable now, not reachable from what we stored last time
    revs = list(tips)
    if has_stored and old_present:
        revs += [f"^{t}" for t in sorted(old_present)]
    if tips and total_hint is not None:
        out = _run_with_stdin(repo, ["rev-list", "--count", "--stdin"], revs)
        total_hint(int(out.strip() or 0))

    default_tip = next(
        (
            r.tip_hash
            for r in refs
            if default_branch
            and r.short_name == default_branch
            and r.ref_type in ("branch", "remote_branch")
        ),
        None,
    )
    # `for-each-ref --merged` needs only the refs: let it run while the log streams
    side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="merged-into")
    merged_future = side.submit(repo.merged_into, default_tip) if default_tip else None

    with connect(warehouse) as con:
        # git log takes one core; one DuckDB thread on the other inserts with less
        # CPU overall than a pool that competes with git for both.
        con.execute("SET threads = 1")
        if tips:
            failure: RepositoryError | None = None
            degraded = is_partial_clone(repo)  # never let git fetch a blob at a time
            if not degraded:
                try:
                    stream = repo.stream(["log", *LOG_ARGS, "--stdin"], stdin_lines=revs)
                    _stream_into_warehouse(
                        con,
                        spec.name,
                        iter_chunks(stream, chunk_bytes),
                        result,
                        progress,
                        not has_stored,
                    )
                except RepositoryError as exc:
                    failure, degraded = exc, True
            if degraded:
                _extract_readable(con, repo, revs, result, progress, chunk_bytes, failure)

        # 2. commits a rewrite left behind
        if has_stored:
            if not tips:
                result.now_unreachable = _keep_only_reachable(con, spec.name, [])
            elif old_missing:
                # an old tip was garbage-collected: compare against the full reachable set
                reachable = _run_with_stdin(repo, ["rev-list", "--stdin"], tips).split()
                result.now_unreachable = _keep_only_reachable(con, spec.name, reachable)
            elif old_present:
                gone = _run_with_stdin(
                    repo, ["rev-list", "--stdin"], [*sorted(old_present), *(f"^{t}" for t in tips)]
                ).split()
                if gone:
                    result.now_unreachable = _mark_unreachable(con, spec.name, gone)

        # 3. reflog events, and branches that disappeared since the last snapshot
        contents = []
        for ref_name, path in reflog_files:
            try:
                contents.append((ref_name, path.read_bytes()))
            except OSError:
                continue
        events = parse_reflogs(contents, spec.name)
        result.new_ref_events = _insert_ref_events(
            con, spec.name, _ref_events_frame(events, "reflog")
        )
        now_branches = {r.ref_name for r in refs if r.ref_type == "branch"}
        deleted = [
            (name, tip)
            for name, rtype, tip in prev_refs
            if rtype == "branch" and name not in now_branches
        ]
        if deleted:
            now_epoch = int(time.time())
            deletion_events = [
                RefEvent(
                    event_key=hashlib.sha1(
                        f"{spec.name}\0{name}\0{tip}\0deleted\0{fp}".encode()
                    ).hexdigest(),
                    ref_name=name,
                    event_type="branch_deleted",
                    from_ref=name.removeprefix("refs/heads/"),
                    to_ref=None,
                    is_switch=False,
                    old_hash=tip or "",
                    new_hash="0" * 40,
                    actor_name="",
                    actor_email="",
                    occurred_epoch=now_epoch,
                    utc_offset_minutes=0,
                    message="branch no longer present (observed by refs snapshot)",
                )
                for name, tip in deleted
            ]
            result.new_ref_events += _insert_ref_events(
                con, spec.name, _ref_events_frame(deletion_events, "refs_snapshot")
            )
            result.deleted_branches = [n.removeprefix("refs/heads/") for n, _ in deleted]

        # 4. refs snapshot and the repository row, last: a run that died earlier is redone
        merged: set[str] = merged_future.result() if merged_future else set()
        side.shutdown()
        refs_df = pd.DataFrame(
            {
                "ref_name": [r.ref_name for r in refs],
                "short_name": [r.short_name for r in refs],
                "ref_type": [r.ref_type for r in refs],
                "tip_hash": pd.Series([r.tip_hash for r in refs], dtype=object),
                "tip_epoch": pd.Series([r.tip_committed_epoch for r in refs], dtype="Int64"),
                "is_default": pd.Series(
                    [r.short_name == default_branch and r.ref_type != "tag" for r in refs],
                    dtype=bool,
                ),
                "is_merged": pd.Series(
                    [(r.ref_name in merged) if default_tip else None for r in refs], dtype=object
                ),
            }
        )
        con.register("new_refs", refs_df)
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute("DELETE FROM git.refs WHERE repository = ?", [spec.name])
            con.execute(
                """
                INSERT INTO git.refs
                SELECT ?, ref_name, short_name, ref_type, tip_hash,
                       CASE WHEN tip_epoch IS NULL THEN NULL ELSE make_timestamp(tip_epoch * 1000000) END,
                       is_default, is_merged::BOOLEAN, now()::TIMESTAMP
                FROM new_refs
                """,
                [spec.name],
            )
            counts = con.execute(
                "SELECT count(*), max(committed_at) FROM git.commits WHERE repository = ? AND is_reachable",
                [spec.name],
            ).fetchone()
            con.execute("DELETE FROM git.repositories WHERE repository = ?", [spec.name])
            con.execute(
                """
                INSERT INTO git.repositories VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)
                """,
                [
                    spec.name,
                    str(repo.path),
                    default_branch,
                    repo.is_bare,
                    shallow,
                    bool(reflog_files),
                    head_ref,
                    head_hash,
                    fp,
                    counts[0] if counts else 0,
                    counts[1] if counts else None,
                ],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("new_refs")
        result.reachable_commits = int(counts[0]) if counts else 0
        result.refs = len(refs)
    result.seconds = time.perf_counter() - started
    return result


def _run_with_stdin(repo: GitRepository, args: Sequence[str], lines: Sequence[str]) -> str:
    return b"".join(repo.stream(args, stdin_lines=lines)).decode()


# The merge step lives in merges.py; these names stay importable from here.
from symbiotic_assets.git.merges import MergeResult, detect_merge_conflicts  # noqa: E402, F401
