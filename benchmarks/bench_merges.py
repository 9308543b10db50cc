"""How fast conflict detection re-merges, against one plain ``git merge-tree`` at a time.

The baseline is what the merges step used to do with one worker: one
``git merge-tree --write-tree`` process per merge, run in the user's repository with the
inherited environment (new trees sent to a scratch object directory). Ours is
``ScratchMerger`` as ``detect_merge_conflicts`` runs it: a scratch repository, a
commit-graph, a bare environment, one worker per core (``--stdin`` batches where git
has it; ``SYMBIOTIC_MERGE_GIT`` names another git for the re-merges, the baseline keeps
the git on PATH). Baseline and ours take turns, round by round, so a machine whose load drifts
slows both alike; the median round counts, wall and CPU (git children plus this
process). Verdicts must be identical, merge by merge, or the run fails.

    python -m benchmarks.bench_merges REPO [--limit 1000] [--rounds 3] [--workers 0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symbiotic_assets.git.merges import ScratchMerger, Verdict, default_workers
from symbiotic_assets.git.repository import GitRepository, scratch_repository

GOAL_SPEEDUP = 2.0


@dataclass
class MergeBench:
    repository: str
    merges: int
    workers: int
    method: str
    rounds: int
    baseline_wall: list[float] = field(default_factory=list)
    baseline_cpu: list[float] = field(default_factory=list)
    ours_wall: list[float] = field(default_factory=list)
    ours_cpu: list[float] = field(default_factory=list)
    single_wall: list[float] = field(default_factory=list)  # ours with one worker
    single_cpu: list[float] = field(default_factory=list)
    verdicts_identical: bool = True
    mismatches: list[str] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)

    def rate(self, walls: Sequence[float]) -> float:
        return self.merges / statistics.median(walls) if walls else 0.0

    @property
    def speedup(self) -> float:
        """Median baseline wall seconds over median ours: the goal is >= 2."""
        return statistics.median(self.baseline_wall) / statistics.median(self.ours_wall)

    @property
    def cpu_ratio(self) -> float:
        """CPU seconds per merge, baseline over ours (independent of load and cores)."""
        return statistics.median(self.baseline_cpu) / statistics.median(self.ours_cpu)

    def render(self) -> str:
        med = statistics.median
        lines = [
            f"conflict detection on {self.repository}: {self.merges:,} two-parent merges, "
            f"{self.rounds} alternating rounds (median), {self.workers} workers, {self.method}",
            f"  baseline, one plain git merge-tree at a time: {med(self.baseline_wall):7.3f} s wall "
            f"{med(self.baseline_cpu):7.3f} s CPU  {self.rate(self.baseline_wall):7.0f} merges/s",
        ]
        if self.single_wall:
            lines.append(
                f"  ours, 1 worker:                               {med(self.single_wall):7.3f} s wall "
                f"{med(self.single_cpu):7.3f} s CPU  {self.rate(self.single_wall):7.0f} merges/s"
            )
        lines += [
            f"  ours, {self.workers} workers:                              "
            f"{med(self.ours_wall):7.3f} s wall {med(self.ours_cpu):7.3f} s CPU  "
            f"{self.rate(self.ours_wall):7.0f} merges/s",
            f"  speed-up (wall, baseline/ours): {self.speedup:.2f}x  (goal >= {GOAL_SPEEDUP}); "
            f"CPU per merge baseline/ours: {self.cpu_ratio:.2f}x",
            f"  verdicts identical to plain git merge-tree: {self.verdicts_identical}",
            f"  load average {self.load[0]:.2f} at start, {self.load[1]:.2f} at end, "
            f"on {os.cpu_count()} CPUs",
        ]
        if self.mismatches:
            lines += ["  mismatches:"] + [f"    {m}" for m in self.mismatches[:10]]
        return "\n".join(lines)


def two_parent_merges(repo: Path, limit: int | None = None) -> list[tuple[str, str, str]]:
    """(merge, first parent, second parent) of every two-parent merge reachable from any ref."""
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--merges", "--parents", "--all"],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    merges = [tuple(line.split()) for line in out.splitlines()]
    picked = [(m[0], m[1], m[2]) for m in merges if len(m) == 3]
    return picked[:limit] if limit else picked


def plain_merge_tree(repo: Path, objects_scratch: Path, p1: str, p2: str) -> Verdict:
    """One plain ``git merge-tree`` in the repository itself, as the merges step used to run.

    New trees go to ``objects_scratch`` so the repository is not written; the repository's
    own config and attributes apply (that is what "plain" means). The yardstick for speed
    and for verdicts; never run on an untrusted repository.
    """
    objects = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--path-format=absolute", "--git-path", "objects"],
        capture_output=True, check=True, text=True,
    ).stdout.strip()  # fmt: skip
    return _plain(repo, _plain_env(objects, objects_scratch), p1, p2)


def _plain_env(objects: str, objects_scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GIT_OBJECT_DIRECTORY=str(objects_scratch), GIT_ALTERNATE_OBJECT_DIRECTORIES=objects,
               GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")  # fmt: skip
    return env


def _plain(repo: Path, env: dict[str, str], p1: str, p2: str) -> Verdict:
    base = ["git", "-C", str(repo), "merge-tree", "--write-tree", "--name-only", "-z",
            "--no-messages"]  # fmt: skip
    unrelated = False
    proc = subprocess.run([*base, p1, p2], env=env, capture_output=True, check=False)
    if proc.returncode not in (0, 1) and b"unrelated histories" in proc.stderr:
        unrelated = True
        proc = subprocess.run([*base, "--allow-unrelated-histories", p1, p2], env=env,
                              capture_output=True, check=False)  # fmt: skip
    if proc.returncode == 0:
        return "clean", unrelated, [], ""
    if proc.returncode == 1:
        paths: list[str] = []
        for raw in proc.stdout.split(b"\0")[1:]:
            if not raw:
                break
            text = raw.decode("utf-8", errors="replace")
            if text not in paths:
                paths.append(text)
        return "conflict", unrelated, paths, ""
    return "error", unrelated, [], proc.stderr.decode(errors="replace").strip()[:500]


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    cpu, wall = _cpu(), time.perf_counter()
    value = fn()
    return value, time.perf_counter() - wall, _cpu() - cpu


def run_ours(
    merger: ScratchMerger, pairs: Sequence[tuple[str, str]], workers: int
) -> list[Verdict]:
    """Judge ``pairs`` the way ``detect_merge_conflicts`` does (its pool and sharding)."""
    if not pairs:
        return []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        if merger.use_stdin:
            size = -(-len(pairs) // workers)
            shares = [pairs[i : i + size] for i in range(0, len(pairs), size)]
        else:
            shares = [[pair] for pair in pairs]
        return [v for part in pool.map(merger.merge_many, shares) for v in part]


def bench_merges(repo_path: Path, *, limit: int | None = 1000, rounds: int = 3, workers: int = 0,
                 single_worker: bool = True) -> MergeBench:  # fmt: skip
    """Alternate baseline and ours ``rounds`` times over the same merges."""
    repo_path = repo_path.resolve()
    merges = two_parent_merges(repo_path, limit)
    pairs = [(p1, p2) for _, p1, p2 in merges]
    n = workers or default_workers()
    repo = GitRepository.open("bench", repo_path)
    load_start = os.getloadavg()[0]
    with scratch_repository(repo) as scratch, tempfile.TemporaryDirectory() as plain_objects:
        merger = ScratchMerger(scratch)
        graph = merger.write_commit_graph(sorted({p for pair in pairs for p in pair}))
        method = merger.describe(graph)
        result = MergeBench(str(repo_path), len(pairs), n, method, rounds)
        env = _plain_env(str(repo.objects_dir()), Path(plain_objects))
        # warm the page cache for both
        _plain(repo_path, env, *pairs[0])
        merger.merge_one(*pairs[0])
        expected: list[Verdict] = []
        for _ in range(rounds):
            expected, wall, cpu = _timed(lambda: [_plain(repo_path, env, *p) for p in pairs])
            result.baseline_wall.append(wall)
            result.baseline_cpu.append(cpu)
            got, wall, cpu = _timed(lambda: run_ours(merger, pairs, n))
            result.ours_wall.append(wall)
            result.ours_cpu.append(cpu)
            if single_worker:
                _, wall, cpu = _timed(lambda: run_ours(merger, pairs, 1))
                result.single_wall.append(wall)
                result.single_cpu.append(cpu)
            for (m, _, _), want, have in zip(merges, expected, got, strict=True):
                if want[:3] != have[:3]:
                    result.verdicts_identical = False
                    result.mismatches.append(f"{m}: plain {want[:3]} ours {have[:3]}")
    result.load = (load_start, os.getloadavg()[0])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_merges", description=__doc__)
    parser.add_argument("repo", type=Path)
    parser.add_argument("--limit", type=int, default=1000, help="merges to re-merge (0: all)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="0: one per core")
    args = parser.parse_args(argv)
    result = bench_merges(args.repo, limit=args.limit or None, rounds=args.rounds,
                          workers=args.workers)  # fmt: skip
    print(result.render())
    return 0 if result.verdicts_identical else 1


if __name__ == "__main__":
    sys.exit(main())
