"""Conflict detection: re-merge every stored two-parent merge and record the verdict.

Moved out of ``extract.py`` so the merge step (how git is asked to re-merge) and the
commit extraction can change independently.
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

import pandas as pd

from symbiotic_assets.core.config import RepositorySpec
from symbiotic_assets.core.warehouse import connect, ensure_git_schema
from symbiotic_assets.git.repository import GitRepository, git_env_isolated_objects

ProgressFn = Callable[[int], None]


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

    @property
    def merges_per_second(self) -> float:
        return self.examined / self.seconds if self.seconds > 0 else 0.0


def _merge_one(
    repo: GitRepository, env: dict[str, str], p1: str, p2: str
) -> tuple[str, bool, list[str], str]:
    """Re-run one two-parent merge: (status, unrelated, conflicted paths, detail)."""
    base = [
        "git",
        "-C",
        str(repo.path),
        "merge-tree",
        "--write-tree",
        "--name-only",
        "-z",
        "--no-messages",
    ]
    unrelated = False
    proc = subprocess.run([*base, p1, p2], env=env, capture_output=True, check=False)
    if proc.returncode not in (0, 1) and b"unrelated histories" in proc.stderr:
        unrelated = True
        proc = subprocess.run(
            [*base, "--allow-unrelated-histories", p1, p2],
            env=env,
            capture_output=True,
            check=False,
        )
    if proc.returncode == 0:
        return "clean", unrelated, [], ""
    if proc.returncode == 1:
        parts = proc.stdout.split(b"\0")
        # first the tree id, then conflicted paths, then an empty field
        paths: list[str] = []
        for raw in parts[1:]:
            if not raw:
                break
            text = raw.decode("utf-8", errors="replace")
            if text not in paths:
                paths.append(text)
        return "conflict", unrelated, paths, ""
    return "error", unrelated, [], proc.stderr.decode("utf-8", errors="replace").strip()[:500]


def detect_merge_conflicts(
    warehouse: str | Path,
    spec: RepositorySpec,
    *,
    workers: int = 0,
    progress: ProgressFn | None = None,
    chunk: int = 500,
) -> MergeResult:
    """Re-merge every stored merge that has no verdict yet, in parallel across cores.

    ``git merge-tree --write-tree`` (git 2.38+) merges without a work tree; exit 1
    means the merge conflicts. The trees it writes go to a scratch object
    directory, so the user's repository is not touched.
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
                              WHERE m.repository = c.repository AND m.merge_hash = c.hash)
            ORDER BY c.committed_at
            """,
            [spec.name],
        ).fetchall()
    if not todo:
        result.seconds = time.perf_counter() - started
        return result
    all_parents = sorted({p for _, parents, _ in todo for p in parents})
    present = repo.existing_commits(all_parents)
    n_workers = workers or os.cpu_count() or 2
    objects_dir = repo.objects_dir()

    with tempfile.TemporaryDirectory(prefix="symbiotic-merge-") as scratch:
        env = git_env_isolated_objects(objects_dir, Path(scratch))
        env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")

        def judge(item: tuple[str, list[str], int]) -> tuple:
            merge_hash, parents, epoch = item
            kind = "two_parent" if len(parents) == 2 else "octopus"
            p1, p2 = parents[0], parents[1]
            if kind == "octopus":
                return (
                    merge_hash,
                    len(parents),
                    p1,
                    p2,
                    kind,
                    None,
                    "octopus",
                    None,
                    [],
                    "",
                    epoch,
                )
            if p1 not in present or p2 not in present:
                missing = [p for p in (p1, p2) if p not in present]
                return (merge_hash, 2, p1, p2, kind, None, "parent_missing", None, [],
                        f"parent not in the repository (shallow clone?): {' '.join(missing)}", epoch)  # fmt: skip
            status, unrelated, paths, detail = _merge_one(repo, env, p1, p2)
            has_conflict = {"clean": False, "conflict": True}.get(status)
            return (
                merge_hash,
                2,
                p1,
                p2,
                kind,
                unrelated,
                status,
                has_conflict,
                paths,
                detail,
                epoch,
            )

        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            for start in range(0, len(todo), chunk):
                rows = list(pool.map(judge, todo[start : start + chunk]))
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
        finally:
            con.unregister("new_merges")
