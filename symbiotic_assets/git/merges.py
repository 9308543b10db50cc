"""Conflict detection: re-merge every stored two-parent merge and record the verdict.

Each merge is re-run with ``git merge-tree --write-tree`` (git 2.38+): exit 0 is clean,
exit 1 is a conflict with the conflicted paths. Two things shape how git is run here:

- **Trust**: the repository is untrusted. Its config and attributes can select a merge
  driver or (with ``merge.renormalize``) a clean filter, which a merge would execute.
  So merges never run in the repository itself but in a scratch repository with a
  config of ours that reads the repository's objects as an alternate
  (``repository.scratch_repository``); nothing the repository configures applies there.
- **Speed**: a merge costs a few milliseconds of git CPU, a third of it process start and
  most of the rest finding the merge base by parsing commits. The scratch repository gets
  a commit-graph of the merged parents' history (written once per run, a fraction of a
  second for 50,000 commits), which makes merge-base walks cheap; merges run in parallel,
  one git process per core, with a bare environment and no config to read. Where git
  has ``merge-tree --stdin`` (2.42+), each worker streams its share of the merges through
  one long-lived process instead of starting one per merge.

A merge git cannot re-merge (objects missing from a damaged clone) is stored with
``status = 'error'``, ``has_conflict`` NULL (unknown) and git's message in ``detail``; it
is retried on the next run, so a repaired clone gets its verdict. Parents missing
from a shallow clone are ``parent_missing`` (also unknown).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pandas as pd

from symbiotic_assets.core.config import RepositorySpec, read_environment
from symbiotic_assets.core.schema import ensure_git_schema
from symbiotic_assets.core.warehouse import connect
from symbiotic_assets.git.repository import (
    MIN_GIT_VERSION,
    STDIN_MERGE_VERSION,
    GitRepository,
    git_environment,
    git_version,
    scratch_repository,
)

ProgressFn = Callable[[int], None]
# A git used for re-merges only (an absolute path), when the one on PATH is older than
# 2.42: ``merge-tree --stdin`` cuts the CPU per merge by an order of magnitude.
MERGE_GIT_ENV = "SYMBIOTIC_MERGE_GIT"
# Below this many merges to judge, walking the history once to write a commit-graph costs
# more than it saves (an incremental run re-merges a handful).
COMMIT_GRAPH_MIN_MERGES = 200
_MERGE_TREE = ["merge-tree", "--write-tree", "--name-only", "-z", "--no-messages"]

# (status, unrelated histories, conflicted paths, detail)
Verdict = tuple[str, bool, list[str], str]


@dataclass
class MergeResult:
    repository: str
    examined: int = 0
    clean: int = 0
    conflict: int = 0
    octopus: int = 0
    unrelated: int = 0
    parent_missing: int = 0
    errors: int = 0
    seconds: float = 0.0
    method: str = ""  # how git was run (ScratchMerger.describe)

    @property
    def merges_per_second(self) -> float:
        return self.examined / self.seconds if self.seconds > 0 else 0.0

    @property
    def verdict_unknown(self) -> int:
        """Two-parent merges with no verdict (parent missing, or git could not re-merge)."""
        return self.parent_missing + self.errors


class ScratchMerger:
    """Re-merges pairs of commits inside a scratch repository (see the module docstring)."""

    def __init__(
        self, scratch: Path, *, use_stdin: bool | None = None, executable: str | None = None
    ):
        self.scratch = scratch
        self.executable = executable or merge_git()
        # GIT_DIR: no repository discovery, and nothing but the scratch repository is read.
        self.env = git_environment(GIT_DIR=str(scratch))
        if use_stdin is None:
            use_stdin = git_version(self.executable) >= STDIN_MERGE_VERSION
        self.use_stdin = use_stdin

    def _git(
        self, args: Sequence[str], stdin: IO[bytes] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [self.executable, *args],
            cwd=self.scratch,
            env=self.env,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            capture_output=True,
            check=False,
        )

    def describe(self, graph: bool) -> str:
        """How merges run, for the asset's metadata and the benchmark."""
        major, minor = git_version(self.executable)
        how = "merge-tree --stdin" if self.use_stdin else "one merge-tree per merge"
        return f"{how}{' + commit-graph' if graph else ''} (git {major}.{minor})"

    def write_commit_graph(self, commits: Sequence[str]) -> bool:
        """A commit-graph of everything reachable from ``commits``, in the scratch repository.

        Returns False where git declines (a shallow clone, say); merges then walk without it.
        """
        if not commits:
            return False
        with tempfile.TemporaryFile() as stdin:
            stdin.write(("\n".join(commits) + "\n").encode())
            stdin.seek(0)
            proc = self._git(["commit-graph", "write", "--stdin-commits", "--no-progress"], stdin)
        graph = self.scratch / "objects" / "info" / "commit-graph"
        return proc.returncode == 0 and graph.is_file()

    def merge_one(self, p1: str, p2: str) -> Verdict:
        """Re-run one two-parent merge with its own git process."""
        unrelated = False
        proc = self._git([*_MERGE_TREE, p1, p2])
        if proc.returncode not in (0, 1) and b"unrelated histories" in proc.stderr:
            # as the person who made the merge had to
            unrelated = True
            proc = self._git([*_MERGE_TREE, "--allow-unrelated-histories", p1, p2])
        if proc.returncode == 0:
            return "clean", unrelated, [], ""
        if proc.returncode == 1:
            # the tree id, then the conflicted paths, then an empty field
            return "conflict", unrelated, _paths(proc.stdout.split(b"\0")[1:]), ""
        detail = proc.stderr.decode("utf-8", errors="replace").strip()[:500]
        return "error", unrelated, [], detail or f"git merge-tree exited with {proc.returncode}"

    def merge_many(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        """Verdicts for ``pairs``, in order: one ``--stdin`` process where git has it.

        ``merge-tree --stdin`` stops at the first merge it cannot do (unrelated histories,
        a missing object); the verdicts before it are kept, that merge is re-run on its own
        (which knows how to handle it) and a new process takes the rest.
        """
        if not self.use_stdin:
            return [self.merge_one(p1, p2) for p1, p2 in pairs]
        verdicts: list[Verdict] = []
        while len(verdicts) < len(pairs):
            rest = pairs[len(verdicts) :]
            with tempfile.TemporaryFile() as stdin:
                stdin.write("".join(f"{p1} {p2}\n" for p1, p2 in rest).encode())
                stdin.seek(0)
                proc = self._git([*_MERGE_TREE, "--stdin"], stdin)
            done = parse_stdin_output(proc.stdout)[: len(rest)]
            verdicts.extend(
                ("clean" if clean else "conflict", False, paths, "") for clean, paths in done
            )
            if len(verdicts) < len(pairs):
                verdicts.append(self.merge_one(*pairs[len(verdicts)]))
        return verdicts


def merge_git() -> str:
    """The git that re-merges: ``$SYMBIOTIC_MERGE_GIT`` if set, else the one on PATH.

    The variable must be an absolute path to an executable git 2.38 or newer; anything else
    is refused with the reason, rather than silently falling back.
    """
    chosen = (read_environment().merge_git or "").strip()
    if not chosen:
        return "git"
    path = Path(chosen)
    if not path.is_absolute() or not path.is_file() or not os.access(path, os.X_OK):
        raise RuntimeError(f"{MERGE_GIT_ENV}={chosen!r} is not an absolute path to an executable")
    version = git_version(str(path))
    if version < MIN_GIT_VERSION:
        raise RuntimeError(
            f"{MERGE_GIT_ENV}={chosen!r} is git {version[0]}.{version[1]}; re-merging needs 2.38+"
        )
    return str(path)


def parse_stdin_output(out: bytes) -> list[tuple[bool, list[str]]]:
    """Complete records of ``merge-tree --stdin -z --name-only --no-messages`` output.

    Each record is ``<1 clean | 0 conflict> NUL <tree> NUL (<path> NUL)* NUL``; a record
    cut short (the process died while writing it) is left out.
    """
    fields = out.split(b"\0")
    records: list[tuple[bool, list[str]]] = []
    i = 0
    while i + 2 < len(fields) and fields[i] in (b"0", b"1"):
        try:
            end = fields.index(b"", i + 2)
        except ValueError:
            break
        if end >= len(fields) - 1:  # the terminating NUL never came
            break
        records.append((fields[i] == b"1", _paths(fields[i + 2 : end])))
        i = end + 1
    return records


def _paths(fields: Sequence[bytes]) -> list[str]:
    paths: list[str] = []
    for raw in fields:
        if not raw:
            break
        text = raw.decode("utf-8", errors="replace")
        if text not in paths:
            paths.append(text)
    return paths


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def detect_merge_conflicts(
    warehouse: str | Path,
    spec: RepositorySpec,
    *,
    workers: int = 0,
    progress: ProgressFn | None = None,
    chunk: int = 500,
    use_stdin: bool | None = None,
) -> MergeResult:
    """Re-merge every stored merge that has no verdict yet (or whose re-merge failed).

    ``use_stdin`` forces or forbids ``merge-tree --stdin`` (default: when git has it).
    """
    started = time.perf_counter()
    result = MergeResult(repository=spec.name)
    repo = GitRepository.open(spec.name, spec.path)
    with connect(warehouse) as con:
        ensure_git_schema(con)
        todo = con.execute(
            """
            SELECT c.hash, c.parent_hashes, epoch(c.committed_at)::BIGINT
            FROM git.commits c
            WHERE c.repository = ? AND c.parent_count >= 2
              AND NOT EXISTS (SELECT 1 FROM git.merges m
                              WHERE m.repository = c.repository AND m.merge_hash = c.hash
                                AND m.status <> 'error')
            ORDER BY c.committed_at, c.hash
            """,
            [spec.name],
        ).fetchall()
    if not todo:
        result.seconds = time.perf_counter() - started
        return result
    all_parents = sorted({p for _, parents, _ in todo for p in parents})
    present = repo.existing_commits(all_parents)
    n_workers = max(1, workers or default_workers())

    with scratch_repository(repo) as scratch:
        merger = ScratchMerger(scratch, use_stdin=use_stdin)
        two_parent = [t for t in todo if len(t[1]) == 2]
        graph = False
        if len(two_parent) >= COMMIT_GRAPH_MIN_MERGES and not repo.is_shallow():
            graph = merger.write_commit_graph(
                sorted({p for _, ps, _ in two_parent for p in ps} & present)
            )
        result.method = merger.describe(graph)

        def rows_for(items: Sequence[tuple[str, list[str], int]]) -> list[tuple]:
            """Rows for one worker's share, in order."""
            rows: list[tuple | None] = []
            pairs: list[tuple[str, str]] = []
            slots: list[int] = []
            for merge_hash, parents, epoch in items:
                p1, p2 = parents[0], parents[1]
                if len(parents) > 2:
                    rows.append((merge_hash, len(parents), p1, p2, "octopus", None, "octopus",
                                 None, [], "", epoch))  # fmt: skip
                elif p1 not in present or p2 not in present:
                    missing = " ".join(p for p in (p1, p2) if p not in present)
                    rows.append((merge_hash, 2, p1, p2, "two_parent", None, "parent_missing", None, [],
                                 f"parent not in the repository (shallow clone?): {missing}", epoch))  # fmt: skip
                else:
                    slots.append(len(rows))
                    rows.append(None)
                    pairs.append((p1, p2))
            for slot, (status, unrelated, paths, detail) in zip(
                slots, merger.merge_many(pairs), strict=True
            ):
                merge_hash, parents, epoch = items[slot]
                has_conflict = {"clean": False, "conflict": True}.get(status)
                rows[slot] = (merge_hash, 2, parents[0], parents[1], "two_parent", unrelated,
                              status, has_conflict, paths, detail, epoch)  # fmt: skip
            return [r for r in rows if r is not None]

        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for start in range(0, len(todo), chunk):
                part = todo[start : start + chunk]
                if merger.use_stdin:
                    # one long-lived process per worker, each with a contiguous share
                    size = -(-len(part) // n_workers)
                    shares = [part[i : i + size] for i in range(0, len(part), size)]
                else:
                    shares = [[item] for item in part]
                rows = [row for share_rows in pool.map(rows_for, shares) for row in share_rows]
                _write_merges(warehouse, spec.name, rows)
                for row in rows:
                    status = row[6]
                    result.examined += 1
                    if status == "clean":
                        result.clean += 1
                    elif status == "conflict":
                        result.conflict += 1
                    elif status == "octopus":
                        result.octopus += 1
                    elif status == "parent_missing":
                        result.parent_missing += 1
                    else:
                        result.errors += 1
                    if row[5]:
                        result.unrelated += 1
                if progress:
                    progress(len(rows))
    result.seconds = time.perf_counter() - started
    return result


def _write_merges(warehouse: str | Path, repository: str, rows: Sequence[tuple]) -> None:
    """Insert verdicts; a merge whose earlier re-merge failed has that row replaced.

    One transaction: a failed row is deleted only together with the insert of its new
    verdict, and the anti-join keeps a re-run from inserting anything twice.
    """
    frame = pd.DataFrame(
        rows,
        columns=[
            "merge_hash",
            "parent_count",
            "first_parent",
            "second_parent",
            "merge_kind",
            "unrelated",
            "status",
            "has_conflict",
            "paths",
            "detail",
            "epoch",
        ],  # fmt: skip
    )
    frame["paths"] = frame["paths"].map(lambda p: "\0".join(p))
    frame["unrelated"] = frame["unrelated"].astype(object)
    frame["has_conflict"] = frame["has_conflict"].astype(object)
    with connect(warehouse) as con:
        con.register("new_merges", frame)
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(
                """
                DELETE FROM git.merges
                WHERE repository = ? AND status = 'error'
                  AND merge_hash IN (SELECT merge_hash FROM new_merges)
                """,
                [repository],
            )
            con.execute(
                """
                INSERT INTO git.merges
                SELECT ?, m.merge_hash, m.parent_count, m.first_parent, m.second_parent, m.merge_kind,
                       m.unrelated::BOOLEAN, m.status, m.has_conflict::BOOLEAN,
                       CASE WHEN m.paths = '' THEN []::VARCHAR[] ELSE string_split(m.paths, chr(0)) END,
                       nullif(m.detail, ''), make_timestamp(m.epoch * 1000000)
                FROM new_merges m
                WHERE NOT EXISTS (SELECT 1 FROM git.merges x
                                  WHERE x.repository = ? AND x.merge_hash = m.merge_hash)
                """,
                [repository, repository],
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("new_merges")
