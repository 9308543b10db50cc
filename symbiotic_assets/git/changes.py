"""Which repositories need work, and the work for many of them in one process.

A refresh of hundreds of repositories is mostly repositories where nothing moved. The
cost of finding that out must be one cheap look per repository, not one Dagster run
each: ``plan_changes`` reads every repository's current fingerprint (refs including
packed refs, symbolic HEAD, reflog sizes and times, default branch: the same inputs
``refresh_repository`` stores in ``git.repositories.refs_fingerprint``) and compares it
with the stored one in a single warehouse query. It also reports repositories whose
refs did not move but whose work is unfinished (merges without a verdict, commits
without a vector), so an interrupted run is completed by the next one.

``refresh_many`` extracts the changed repositories in parallel inside one process:
git runs in child processes, the parse and the inserts release the GIL for most of
their time, and all threads write through the one DuckDB database instance this
process holds (DuckDB allows one writing process per file; within it, concurrent
appends to different rows do not conflict). Each repository's rows are written by
exactly the code a sequential run uses, so the tables come out identical.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from symbiotic_assets.core.config import RepositorySpec
from symbiotic_assets.core.schema import ensure_git_schema
from symbiotic_assets.core.warehouse import connect, table_exists
from symbiotic_assets.git.extract import (
    RefreshResult,
    choose_default_branch,
    fingerprint,
    refresh_repository,
)
from symbiotic_assets.git.merges import MergeResult, detect_merge_conflicts
from symbiotic_assets.git.repository import GitRepository, RepositoryError
from symbiotic_assets.git.shared_history import reuse_merge_verdicts

NOT_EXTRACTED = "not extracted yet"
REFS_MOVED = "refs, HEAD or reflog changed"


def available_cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def current_fingerprint(spec: RepositorySpec) -> str:
    """The fingerprint ``refresh_repository`` would store for the repository right now.

    One ``for-each-ref``, one ``symbolic-ref``/``rev-parse`` for HEAD and a ``stat`` of
    each reflog file: about 30 ms, whatever the size of the history.
    """
    repo = GitRepository.open(spec.name, spec.path)
    head_ref, head_hash = repo.head()
    refs = repo.refs()
    default_branch = choose_default_branch(refs, spec.default_branch, head_ref)
    signature = repo.reflog_signature(repo.reflog_files())
    return fingerprint(repo, refs, head_ref, head_hash, signature, default_branch)


@dataclass(frozen=True)
class RepositoryChange:
    """One repository's verdict: ``reasons`` is empty when there is nothing to do."""

    spec: RepositorySpec
    reasons: tuple[str, ...] = ()
    fingerprint: str | None = None  # None when the repository could not be read

    @property
    def changed(self) -> bool:
        return bool(self.reasons)


@dataclass
class ChangePlan:
    changes: list[RepositoryChange]
    seconds: float = 0.0

    @property
    def changed(self) -> list[RepositoryChange]:
        return [c for c in self.changes if c.changed]

    @property
    def unchanged(self) -> list[RepositoryChange]:
        return [c for c in self.changes if not c.changed]


def _stored_state(
    warehouse: str | Path, names: Sequence[str], embedding_model: str | None
) -> tuple[dict[str, str | None], dict[str, int], dict[str, int]]:
    """(stored fingerprint, merges to judge, commits without a vector) per repository."""
    database = str(warehouse)
    if database != ":memory:" and not database.startswith("md:") and not Path(database).exists():
        return {}, {}, {}
    try:
        cm = connect(database, read_only=True)
        con = cm.__enter__()
    except duckdb.ConnectionException:
        # this process already holds the file read-write (e.g. inside a Dagster step)
        cm = connect(database)
        con = cm.__enter__()
    try:
        if not table_exists(con, "git", "repositories"):
            return {}, {}, {}
        wanted = list(names)
        stored = dict(
            con.execute(
                "SELECT repository, refs_fingerprint FROM git.repositories "
                "WHERE repository IN (SELECT unnest(?::VARCHAR[]))",
                [wanted],
            ).fetchall()
        )
        merges: dict[str, int] = {}
        if table_exists(con, "git", "merges"):
            # the same rule as detect_merge_conflicts: no verdict yet, or a failed re-merge
            merges = dict(
                con.execute(
                    """
                    SELECT c.repository, count(*) FROM git.commits c
                    WHERE c.repository IN (SELECT unnest(?::VARCHAR[])) AND c.parent_count >= 2
                      AND NOT EXISTS (SELECT 1 FROM git.merges m WHERE m.repository = c.repository
                                      AND m.merge_hash = c.hash AND m.status <> 'error')
                    GROUP BY 1
                    """,
                    [wanted],
                ).fetchall()
            )
        vectors: dict[str, int] = {}
        if embedding_model is not None:
            has_table = table_exists(con, "search", "commit_embeddings")
            missing = (
                "NOT EXISTS (SELECT 1 FROM search.commit_embeddings e WHERE e.repository = "
                "c.repository AND e.hash = c.hash AND e.model = ?)"
                if has_table
                else "true"
            )
            vectors = dict(
                con.execute(
                    f"SELECT c.repository, count(*) FROM git.commits c "
                    f"WHERE c.repository IN (SELECT unnest(?::VARCHAR[])) AND c.is_reachable "
                    f"AND {missing} GROUP BY 1",
                    [wanted, embedding_model] if has_table else [wanted],
                ).fetchall()
            )
        return stored, merges, vectors
    finally:
        cm.__exit__(None, None, None)


def plan_changes(
    warehouse: str | Path,
    specs: Sequence[RepositorySpec],
    *,
    embedding_model: str | None = None,
    workers: int = 0,
) -> ChangePlan:
    """Which of ``specs`` need a refresh, and why; one warehouse query for all of them.

    ``embedding_model`` (a ``search.commit_embeddings`` model key) also flags repositories
    with reachable commits that have no vector for it. A repository that cannot be read
    is reported as changed with the reason, so the refresh runs and fails with it.
    """
    started = time.perf_counter()
    stored, merges, vectors = _stored_state(warehouse, [s.name for s in specs], embedding_model)

    def check(spec: RepositorySpec) -> RepositoryChange:
        try:
            fp = current_fingerprint(spec)
        except RepositoryError as exc:
            return RepositoryChange(spec, (f"unreadable: {exc}",), None)
        reasons: list[str] = []
        if spec.name not in stored:
            reasons.append(NOT_EXTRACTED)
        elif stored[spec.name] != fp:
            reasons.append(REFS_MOVED)
        if merges.get(spec.name):
            reasons.append(f"{merges[spec.name]} merges without a verdict")
        if vectors.get(spec.name):
            reasons.append(f"{vectors[spec.name]} commits without a vector")
        return RepositoryChange(spec, tuple(reasons), fp)

    n = min(len(specs), workers or 2 * available_cores()) or 1
    if n == 1:
        changes = [check(s) for s in specs]
    else:
        # git child processes do the work; threads only wait for them
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="fingerprint") as pool:
            changes = list(pool.map(check, specs))
    return ChangePlan(changes, time.perf_counter() - started)


@dataclass
class RepositoryOutcome:
    """What one repository's refresh did, or the error that stopped it."""

    spec: RepositorySpec
    refresh: RefreshResult | None = None
    merges: MergeResult | None = None
    error: str = ""
    seconds: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error


def refresh_many(
    warehouse: str | Path,
    specs: Sequence[RepositorySpec],
    *,
    workers: int = 0,
    on_done: Callable[[RepositoryOutcome], None] | None = None,
) -> list[RepositoryOutcome]:
    """Extract and re-merge each repository, ``workers`` at a time (default: one per core).

    Merge verdicts another repository already holds for the same merge commit are copied
    (``shared_history``); which thread computes and which copies may vary, the rows not.

    Results come back in the order of ``specs``. One repository's failure is recorded
    in its outcome and does not stop the others.
    """
    if not specs:
        return []
    n = max(1, min(len(specs), workers or available_cores()))
    merge_workers = max(1, available_cores() // n)

    def one(spec: RepositorySpec) -> RepositoryOutcome:
        started = time.perf_counter()
        outcome = RepositoryOutcome(spec)
        try:
            outcome.refresh = refresh_repository(warehouse, spec)
            with connect(warehouse) as con:
                outcome.extra["reused_verdicts"] = reuse_merge_verdicts(con, spec.name)
            outcome.merges = detect_merge_conflicts(warehouse, spec, workers=merge_workers)
        except Exception as exc:  # recorded per repository; the others go on
            outcome.error = str(exc) or type(exc).__name__
        outcome.seconds = time.perf_counter() - started
        if on_done:
            on_done(outcome)
        return outcome

    # One connection stays open for the whole batch: the threads' own connections then
    # attach to this database instance instead of racing to open the file each time.
    with connect(warehouse) as anchor:
        ensure_git_schema(anchor)
        if n == 1:
            return [one(s) for s in specs]
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="refresh") as pool:
            return list(pool.map(one, specs))
