"""How fast git extraction is, measured against git itself on a generated history.

The yardstick is a plain ``git log --all --numstat`` whose output Python reads
and throws away: extraction cannot be faster than the git process it parses,
so ``baseline / extraction`` says how much our parsing and writing cost on top
(goal: at least 0.9, by wall clock and by CPU time). Baseline and extraction take
turns, round after round (the order alternates), on the same repository after a
warm-up run, and the medians count: the machine's speed drifts, and a shared
machine more so. CPU time is the whole process tree's (this process, its DuckDB
threads and every git it started), which does not depend on what else runs.
Peak memory is sampled over the whole tree too (psutil), git included.

The generated repository is cached (``--cache``, default ``$SYMBIOTIC_HOME/bench``):
a million commits take long to generate, so they are generated once. The
incremental step appends commits and then puts every ref back where it was.

    python -m benchmarks.bench_git [--commits 1000000] [--rounds 3] [--repo PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

GOAL_RATIO = 0.9
GOAL_NOOP_SECONDS = 1.0
MERGE_GOAL_SPEEDUP = 2.0  # conflict detection vs one plain git merge-tree at a time
INCREMENTAL_COMMITS = 100


@dataclass
class Row:
    """One line of the result table."""

    step: str
    seconds: float | None
    items: int | None = None
    unit: str = ""
    note: str = ""
    cpu_python: float | None = None  # CPU seconds of this process during the step
    cpu_git: float | None = None  # CPU seconds of git processes that finished during the step
    peak_tree_bytes: int | None = None  # largest RSS of this process plus its children

    @property
    def rate(self) -> float | None:
        if self.items is None or not self.seconds:
            return None
        return self.items / self.seconds


@dataclass
class BenchResult:
    repository: str
    commits: int
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for row, raw in zip(self.rows, data["rows"], strict=True):
            raw["rate_per_second"] = row.rate
        return data


def _git_out(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, check=True, text=True
    ).stdout.strip()


def _max_rss_bytes(who: int) -> int:
    rss = resource.getrusage(who).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # kilobytes on Linux


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB"


def git_log_baseline(repo: Path) -> tuple[float, int]:
    """Seconds and bytes of one ``git log --all --numstat``, read by Python and discarded."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "log", "--all", "--numstat"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        bufsize=0,  # a raw pipe: read() returns whatever is there, up to 1 MiB
    )
    assert proc.stdout is not None
    total = 0
    while chunk := proc.stdout.read(1 << 20):
        total += len(chunk)
    if proc.wait() != 0:
        raise RuntimeError(f"git log --all --numstat failed in {repo} (status {proc.returncode})")
    return time.perf_counter() - started, total


def generate(path: Path, commits: int, seed: int) -> dict[str, Any]:
    """Run the generator in a child process; returns its summary."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.synthetic_repo", str(path),
         "--commits", str(commits), "--seed", str(seed), "--json"],
        capture_output=True, check=False, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"generating {path} failed: {out.stderr.strip()[-2000:]}")
    summary: dict[str, Any] = json.loads(out.stdout)
    return summary


def _profiled(profile_dir: Path | None, name: str, fn: Any, *args: Any) -> Any:
    if profile_dir is None:
        return fn(*args)
    profiler = cProfile.Profile()
    try:
        return profiler.runcall(fn, *args)
    finally:
        profile_dir.mkdir(parents=True, exist_ok=True)
        target = profile_dir / f"{name}.prof"
        profiler.dump_stats(str(target))
        print(f"\n--- cProfile of {name} (top 20 by cumulative time; full: {target}) ---")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(20)


def _warehouse_counts(warehouse: Path) -> dict[str, int | None]:
    """Row counts of the tables extraction writes (None when a table cannot be read)."""
    import duckdb

    counts: dict[str, int | None] = {}
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        for table, where in (
            ("commits", "WHERE is_reachable"),
            ("commit_files", ""),
            ("refs", ""),
            ("ref_events", ""),
            ("merges", ""),
        ):
            try:
                row = con.execute(f"SELECT count(*) FROM git.{table} {where}").fetchone()
                counts[table] = int(row[0]) if row else None
            except duckdb.Error:
                counts[table] = None
    finally:
        con.close()
    return counts


class TreeMemory:
    """Samples the RSS of this process plus all its children (git, mostly) in the background.

    ``ru_maxrss`` sees one process at a time; git's memory would go unreported.
    """

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._me = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name="tree-memory")

    def _sample(self) -> int:
        total = self._me.memory_info().rss
        for child in self._me.children(recursive=True):
            with contextlib.suppress(Exception):  # a git that just exited
                total += child.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self._interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Measure:
    """One timed call: wall seconds, CPU of this process and of its finished children, peak RSS."""

    wall: float
    cpu_self: float
    cpu_children: float
    peak_tree_bytes: int

    @property
    def cpu(self) -> float:
        return self.cpu_self + self.cpu_children


def _measured(fn: Callable[..., T], *args: Any) -> tuple[T, Measure]:
    with TreeMemory() as memory:
        value, wall, cpu_self, cpu_children = _timed(fn, *args)
    return value, Measure(wall, cpu_self, cpu_children, memory.peak)


def _timed(fn: Callable[..., T], *args: Any) -> tuple[T, float, float, float]:
    """Call ``fn``: (its value, wall seconds, CPU seconds here, CPU seconds of finished children)."""
    before, started = os.times(), time.perf_counter()
    value = fn(*args)
    wall, after = time.perf_counter() - started, os.times()
    cpu_self = (after.user - before.user) + (after.system - before.system)
    cpu_children = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return value, wall, cpu_self, cpu_children


def _merge_baseline(repo: Path, limit: int, rounds: int) -> Any:
    """Plain one-at-a-time ``git merge-tree`` against our engine, same merges, same run."""
    from benchmarks.bench_merges import bench_merges

    print(f"merge baseline: {limit} merges, {rounds} alternating rounds ...", flush=True)
    bench = bench_merges(repo, limit=limit, rounds=rounds, single_worker=False)
    print(bench.render(), flush=True)
    return bench


def cached_repository(cache: Path, commits: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The generated repository for (commits, seed), generated on first use only.

    The generator's summary is written next to it last, so a generation that died
    half-way is not mistaken for a finished one: its folder is generated again.
    """
    repo = cache / f"synthetic-{commits}-s{seed}"
    summary_file = cache / f"synthetic-{commits}-s{seed}.json"
    if summary_file.exists() and repo.is_dir():
        return repo, json.loads(summary_file.read_text())
    if repo.exists():
        shutil.rmtree(repo)
    cache.mkdir(parents=True, exist_ok=True)
    print(f"generating a {commits:,}-commit repository in {repo} (cached for later runs) ...",
          flush=True)  # fmt: skip
    summary = generate(repo, commits, seed)
    summary_file.write_text(json.dumps(summary, indent=2) + "\n")
    return repo, summary


def _refs_snapshot(repo: Path) -> dict[str, str]:
    out = _git_out(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def _restore_refs(repo: Path, before: dict[str, str]) -> None:
    """Put every ref back where ``before`` saw it (the incremental step moved some)."""
    now = _refs_snapshot(repo)
    lines = [f"update {ref} {oid}" for ref, oid in before.items() if now.get(ref) != oid]
    lines += [f"delete {ref}" for ref in now if ref not in before]
    if lines:
        subprocess.run(["git", "-C", str(repo), "update-ref", "--stdin"],
                       input="\n".join(lines) + "\n", text=True, check=True)  # fmt: skip
    head = _git_out(repo, "symbolic-ref", "-q", "HEAD")
    if head and (repo / ".git").exists():
        subprocess.run(["git", "-C", str(repo), "reset", "-q", "--hard"], check=True)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def run_bench(
    commits: int,
    repo: Path | None,
    seed: int,
    keep: bool,
    profile_dir: Path | None,
    repeat: int = 2,
    merge_limit: int = 1000,
    merge_rounds: int = 3,
    cache: Path = Path(".symbiotic") / "bench",
    extraction_only: bool = False,
) -> BenchResult:
    from benchmarks.synthetic_repo import CONFIG_MARKER, append_commits
    from symbiotic_assets.core.config import RepositorySpec
    from symbiotic_assets.git.extract import detect_merge_conflicts, refresh_repository

    scratch = Path(tempfile.mkdtemp(prefix="symbiotic-bench-"))
    try:
        summary: dict[str, Any] | None = None
        rows: list[Row] = []
        if repo is None:
            repo, summary = cached_repository(cache, commits, seed)
            rows.append(Row("generate (git fast-import, cached)", float(summary["seconds"]),
                            int(summary["commits"]), "commits"))  # fmt: skip
        repo = repo.resolve()
        total = int(_git_out(repo, "rev-list", "--all", "--count"))
        merges_total = int(_git_out(repo, "rev-list", "--merges", "--all", "--count"))
        result = BenchResult(repository=str(repo), commits=total, rows=rows)
        result.environment = {
            "git": _git_out(repo, "version"),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg()[0],
        }
        if summary is not None:
            result.figures["generator"] = summary
        spec = RepositorySpec(name="synthetic", path=repo)

        # Baseline and full extraction take turns, the order alternating round by
        # round, so that a busy machine slows both alike; medians count. The first
        # git log only warms the page cache.
        git_log_baseline(repo)
        baselines: list[Measure] = []
        extractions: list[Measure] = []
        warehouse = scratch / "warehouse.duckdb"
        full: Any = None
        baseline_bytes = 0
        rounds = max(repeat, 1)

        def one_baseline(run: int) -> None:
            nonlocal baseline_bytes
            print(f"round {run + 1}/{rounds}: git log --all --numstat ...", flush=True)
            (_, baseline_bytes), m = _measured(git_log_baseline, repo)
            baselines.append(m)
            print(f"  -> {m.wall:.2f} s wall, {m.cpu:.2f} s CPU", flush=True)

        def one_extraction(run: int) -> None:
            nonlocal full
            print(f"round {run + 1}/{rounds}: full refresh into a new warehouse ...", flush=True)
            if warehouse.exists():
                warehouse.unlink()
            full, m = _measured(
                _profiled, profile_dir, f"refresh_full_{run + 1}", refresh_repository,
                str(warehouse), spec,
            )  # fmt: skip
            extractions.append(m)
            print(f"  -> {m.wall:.2f} s wall, {m.cpu:.2f} s CPU: {full}", flush=True)

        for run in range(rounds):
            steps = (
                (one_baseline, one_extraction) if run % 2 == 0 else (one_extraction, one_baseline)
            )
            for step in steps:
                step(run)
        peak_after_full = _max_rss_bytes(resource.RUSAGE_SELF)

        def median_row(ms: list[Measure]) -> tuple[float, float, float, int]:
            return (_median([m.wall for m in ms]), _median([m.cpu_self for m in ms]),
                    _median([m.cpu_children for m in ms]), max(m.peak_tree_bytes for m in ms))  # fmt: skip

        base_m, ours_m = median_row(baselines), median_row(extractions)
        rows.append(Row("baseline git log --all --numstat", base_m[0], total, "commits",
                        f"{baseline_bytes / (1 << 20):.0f} MiB of output", *base_m[1:]))  # fmt: skip
        rows.append(Row("extraction: full refresh", ours_m[0], total, "commits",
                        f"new_commits={full.new_commits}", *ours_m[1:]))  # fmt: skip
        ratio = base_m[0] / ours_m[0]
        # CPU seconds of the whole tree (git plus Python plus DuckDB) do not depend
        # on what else the machine runs
        base_cpu = _median([m.cpu for m in baselines])
        ours_cpu = _median([m.cpu for m in extractions])
        cpu_ratio = base_cpu / ours_cpu if ours_cpu else None

        merges: Any = None
        merge_bench: Any = None
        noop: Any = None
        noop_s: float | None = None
        incremental: Any = None
        incremental_s: float | None = None
        two_parent = 0
        # --extraction-only: at a million commits, re-merging 150,000 merges takes hours here
        if not extraction_only:
            print("merge conflict detection ...", flush=True)
            merges, wall, cpu, cpu_git = _timed(
                _profiled, profile_dir, "detect_merge_conflicts", detect_merge_conflicts,
                str(warehouse), spec,
            )  # fmt: skip
            print(f"  -> {merges}", flush=True)
            two_parent = int(merges.clean) + int(merges.conflict)
            rows.append(Row("conflict detection (merge-tree)", wall, two_parent, "merges",
                            f"clean={merges.clean} conflict={merges.conflict} "
                            f"octopus={merges.octopus} errors={merges.errors}", cpu, cpu_git))  # fmt: skip
            merge_bench = _merge_baseline(repo, merge_limit, merge_rounds)
            rows.append(Row("  plain merge-tree, one at a time",
                            statistics.median(merge_bench.baseline_wall), merge_bench.merges, "merges",
                            f"same run, {merge_bench.rounds} rounds, median",
                            None, statistics.median(merge_bench.baseline_cpu)))  # fmt: skip
            rows.append(Row(f"  merge engine, {merge_bench.workers} workers",
                            statistics.median(merge_bench.ours_wall), merge_bench.merges, "merges",
                            merge_bench.method, None, statistics.median(merge_bench.ours_cpu)))  # fmt: skip
            baseline_rate = merge_bench.rate(merge_bench.baseline_wall)
            result.figures["merges"] = {
                "detect_merges_per_second": two_parent / wall if wall else None,
                "baseline_merges_per_second": baseline_rate,
                "detect_speedup_over_baseline": (two_parent / wall) / baseline_rate
                if wall
                else None,
                "engine_speedup_over_baseline": merge_bench.speedup,
                "engine_cpu_ratio_baseline_over_ours": merge_bench.cpu_ratio,
                "method": merges.method,
                "workers": merge_bench.workers,
            }

            print("no-op refresh ...", flush=True)
            noop, noop_s, cpu, cpu_git = _timed(refresh_repository, str(warehouse), spec)
            rows.append(Row("no-op refresh", noop_s, None, "", f"noop={noop.noop}", cpu, cpu_git))

            if _git_out(repo, "config", "--default", "", "--get", CONFIG_MARKER) == "true":
                refs_before = _refs_snapshot(repo)
                append_commits(repo, INCREMENTAL_COMMITS)
                print(
                    f"incremental refresh after {INCREMENTAL_COMMITS} new commits ...", flush=True
                )
                incremental, incremental_s, cpu, cpu_git = _timed(
                    refresh_repository, str(warehouse), spec
                )
                rows.append(Row(f"incremental refresh (+{INCREMENTAL_COMMITS} commits)",
                                incremental_s, int(incremental.new_commits), "commits",
                                f"new_commits={incremental.new_commits}", cpu, cpu_git))  # fmt: skip
                merges_again, wall, cpu, cpu_git = _timed(
                    detect_merge_conflicts, str(warehouse), spec
                )
                rows.append(Row("conflict detection, nothing new", wall, int(merges_again.examined),
                                "merges", "", cpu, cpu_git))  # fmt: skip
                _restore_refs(repo, refs_before)  # the cached repository stays as generated
            else:
                print(f"  {repo} was not generated by this benchmark: incremental step skipped")

        result.environment["load_average_at_end"] = os.getloadavg()[0]
        result.figures.update(
            baseline_seconds=base_m[0],
            baseline_runs_seconds=[m.wall for m in baselines],
            baseline_runs_cpu_seconds=[m.cpu for m in baselines],
            extraction_seconds=ours_m[0],
            extraction_runs_seconds=[m.wall for m in extractions],
            extraction_runs_cpu_seconds=[m.cpu for m in extractions],
            ratio_baseline_over_extraction=ratio,
            cpu_ratio_baseline_over_extraction=cpu_ratio,
            extraction_commits_per_second=total / ours_m[0],
            baseline_commits_per_second=total / base_m[0],
            baseline_peak_tree_bytes=base_m[3],
            extraction_peak_tree_bytes=ours_m[3],
            conflict_merges_per_second=two_parent / merges.seconds
            if merges is not None and merges.seconds
            else None,
            noop_seconds=noop_s,
            incremental_seconds=incremental_s,
            peak_rss_bytes_after_full_refresh=peak_after_full,
            peak_rss_bytes=_max_rss_bytes(resource.RUSAGE_SELF),
            warehouse_bytes=warehouse.stat().st_size if warehouse.exists() else None,
        )

        counts = _warehouse_counts(warehouse)
        expected_commits = total + (INCREMENTAL_COMMITS if incremental else 0)
        checks: dict[str, Any] = {
            "ratio_goal_met": ratio >= GOAL_RATIO,
            "cpu_ratio_goal_met": (cpu_ratio or 0) >= GOAL_RATIO,
            "python_peak_below_1_gib": peak_after_full < (1 << 30),
            "noop_goal_met": None
            if noop is None
            else bool(noop.noop) and (noop_s or 0) <= GOAL_NOOP_SECONDS,
            "stored_commits": counts.get("commits"),
            "stored_commits_equal_rev_list": counts.get("commits") == expected_commits,
            "stored_merges": counts.get("merges"),
            "merges_equal_rev_list": counts.get("merges") == merges_total,
        }
        if incremental is not None:
            checks["incremental_new_commits_equal_appended"] = (
                incremental.new_commits == INCREMENTAL_COMMITS
            )
        if extraction_only:  # what the merges would have said is not known: no check
            for key in ("noop_goal_met", "stored_merges", "merges_equal_rev_list"):
                checks.pop(key)
            result.checks = checks
            return result
        if summary is not None:
            checks["conflicts_equal_generator"] = merges.conflict == summary["conflicting_merges"]
            checks["clean_equal_generator"] = merges.clean == summary["clean_merges"]
            checks["octopus_equal_generator"] = merges.octopus == summary["octopus_merges"]
        checks["merge_verdicts_identical_to_plain_merge_tree"] = merge_bench.verdicts_identical
        checks["merge_speedup_goal_met"] = (
            result.figures["merges"]["detect_speedup_over_baseline"] or 0
        ) >= MERGE_GOAL_SPEEDUP
        result.checks = checks
        return result
    finally:
        if keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _fmt(value: float | None, spec: str) -> str:
    """``value`` formatted by ``spec`` ("8.3f"), or a dash as wide."""
    return format("-", ">" + spec.split(".")[0]) if value is None else format(value, spec)


def _merge_line(m: dict[str, Any]) -> str:
    if not m or m.get("detect_speedup_over_baseline") is None:
        return "conflict detection: not measured"
    return (
        f"conflict detection: {m['detect_merges_per_second']:,.0f} merges/s = "
        f"{m['detect_speedup_over_baseline']:.2f}x one plain merge-tree at a time "
        f"({m['baseline_merges_per_second']:,.0f}/s, same run; goal >= {MERGE_GOAL_SPEEDUP}); "
        f"CPU per merge {m['engine_cpu_ratio_baseline_over_ours']:.2f}x less; {m['method']}, "
        f"{m['workers']} workers"
    )


def render(result: BenchResult) -> str:
    """The table a person reads."""
    width = 118
    lines = [
        f"repository: {result.repository}  ({result.commits:,} commits)",
        f"{'step':<38} {'seconds':>8} {'items':>7} {'per second':>17} {'cpu py':>7} {'cpu git':>7}"
        "  note",
        "-" * width,
    ]
    for row in result.rows:
        items = "-" if row.items is None else f"{row.items:,}"
        rate = "-" if row.rate is None else f"{row.rate:,.0f} {row.unit}/s"
        lines.append(
            f"{row.step:<38} {_fmt(row.seconds, '8.3f')} {items:>7} {rate:>17} "
            f"{_fmt(row.cpu_python, '7.2f')} {_fmt(row.cpu_git, '7.2f')}  {row.note}"
        )
    f = result.figures
    env = result.environment
    lines += [
        "-" * width,
        f"wall ratio baseline/extraction: {_fmt(f.get('ratio_baseline_over_extraction'), '.2f')}"
        f"  (goal >= {GOAL_RATIO}; median of {len(f['extraction_runs_seconds'])} interleaved rounds:"
        f" baseline {', '.join(f'{x:.2f}' for x in f['baseline_runs_seconds'])} s,"
        f" extraction {', '.join(f'{x:.2f}' for x in f['extraction_runs_seconds'])} s)",
        f"CPU ratio (whole process tree): {_fmt(f.get('cpu_ratio_baseline_over_extraction'), '.2f')}"
        f"  (goal >= {GOAL_RATIO}; baseline"
        f" {', '.join(f'{x:.2f}' for x in f['baseline_runs_cpu_seconds'])} s,"
        f" extraction {', '.join(f'{x:.2f}' for x in f['extraction_runs_cpu_seconds'])} s;"
        " independent of load)",
        f"peak memory of the process tree (git included): baseline"
        f" {_mib(f['baseline_peak_tree_bytes'])}, extraction {_mib(f['extraction_peak_tree_bytes'])}",
        f"no-op refresh: {_fmt(f.get('noop_seconds'), '.3f')} s  (goal <= {GOAL_NOOP_SECONDS} s)",
        _merge_line(f.get("merges") or {}),
        f"peak memory of this process: {_mib(f['peak_rss_bytes_after_full_refresh'])} after the "
        f"full refreshes, {_mib(f['peak_rss_bytes'])} at the end (the generator ran in a child)",
        f"load average: {env['load_average_at_start']:.2f} at start, "
        f"{env['load_average_at_end']:.2f} at end, on {env['cpus']} CPUs",
    ]
    busiest = max(env["load_average_at_start"], env["load_average_at_end"])
    if env["cpus"] and busiest > 0.5 * env["cpus"]:
        lines.append(
            f"WARNING: the machine was busy (load {busiest:.1f} on {env['cpus']} CPUs); "
            "wall-clock figures are unreliable, compare the CPU columns"
        )
    if f.get("warehouse_bytes"):
        lines.append(f"warehouse file: {_mib(f['warehouse_bytes'])}")
    lines.append("checks:")
    for key, value in result.checks.items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_git",
        description="Benchmark git extraction against plain git log on a generated repository.",
    )
    parser.add_argument("--commits", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("SYMBIOTIC_HOME", ".symbiotic")) / "bench",
                        help="where generated repositories are kept between runs")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repo", type=Path, help="use this repository instead of generating one "
                        "(commits are appended only if benchmarks.synthetic_repo made it)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the repository and warehouse")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run extraction under cProfile and write .prof files here "
                        "(timings then include the profiler's overhead)")  # fmt: skip
    parser.add_argument("--rounds", "--repeat", dest="repeat", type=int, default=3,
                        help="interleaved baseline/extraction rounds; medians count")  # fmt: skip
    parser.add_argument("--merge-limit", type=int, default=1000,
                        help="merges re-merged by the plain merge-tree baseline")  # fmt: skip
    parser.add_argument("--merge-rounds", type=int, default=3,
                        help="alternating baseline/ours rounds for the merges (median counts)")  # fmt: skip
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal or check fails")
    parser.add_argument("--extraction-only", action="store_true",
                        help="only the interleaved git log / full extraction rounds: no conflict "
                        "detection (hours at a million commits), no-op or incremental step")  # fmt: skip
    args = parser.parse_args(argv)

    result = run_bench(args.commits, args.repo, args.seed, args.keep, args.profile, args.repeat,
                       args.merge_limit, args.merge_rounds, cache=args.cache,
                       extraction_only=args.extraction_only)  # fmt: skip
    print()
    print(render(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.as_json(), indent=2, default=str) + "\n")
        print(f"results written to {args.json}")
    if args.strict and not all(v for v in result.checks.values() if isinstance(v, bool)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
