"""What each extra repository costs `symbiotic run`, first run and no-op run.

N local clones of one real history are configured and run through the production
path (the ``symbiotic run`` command, as a user starts it) at two sizes, each in its own
SYMBIOTIC_HOME. Fixed costs (Dagster start-up, dbt, publishing) are the same at both
sizes, so the marginal cost per repository is the difference divided by the difference
in repository count:

    marginal = (T(n_large) - T(n_small)) / (n_large - n_small)

Then the clones of the large size that the small home lacks are added to it and run:
only they change, so that run over a no-op run of the same home is the cost of the added
repositories alone, with no first clone's work in it (``measure_added``). Its refresh step
is the steadiest figure on a shared machine; the whole run is an upper bound, since it
rebuilds the global steps (the dbt marts, the search index) whole for the added clones.

The yardstick, measured in the same run on one of the clones, is a plain
``git log --all --numstat``: extraction cannot beat the git process it reads. Goals: a
first run costs at most 3x that per extra repository, a no-op run at most 0.3 s.

Caveat, reported with the figures: the clones share one history, so after the first
clone the commit texts come from the embedding cache; repositories with distinct
histories add the model's time per commit (see ``make bench-embedding``).

Keep the smaller size at least the number of cores: the batch refresh extracts one
repository per core at once, so the first ``cores`` clones all re-merge every merge
(none has a verdict to copy yet). With fewer clones than cores in the small size, the
large size pays that duplicate work and the marginal cost is overstated.

    python -m benchmarks.bench_many_repos [--source PATH] [--sizes 2 8] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from symbiotic_assets.core.config import PROJECT_ROOT

GOAL_FIRST_RATIO = 3.0  # marginal first-run cost / plain git log --all --numstat
GOAL_NOOP_SECONDS = 0.3  # marginal no-op cost per repository


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def clone_many(source: Path, root: Path, n: int) -> list[Path]:
    """``n`` local clones of ``source`` (objects hard-linked, refs and reflogs their own)."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        dest = root / f"r{i:04d}"
        if not dest.exists():
            subprocess.run(["git", "clone", "-q", str(source), str(dest)], check=True)
        paths.append(dest)
    return paths


def git_log_seconds(repo: Path, repeat: int = 3) -> float:
    """Median wall time of a plain ``git log --all --numstat`` read to the end."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            ["git", "-C", str(repo), "log", "--all", "--numstat"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def symbiotic_run(home: Path, config: Path) -> tuple[float, str]:
    """One ``symbiotic run`` in a child process: (wall seconds, stdout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYMBIOTIC_", "DAGSTER_"))}
    env.update(SYMBIOTIC_HOME=str(home), SYMBIOTIC_CONFIG=str(config), COLUMNS="200",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # fmt: skip
    binary = Path(sys.executable).parent / "symbiotic"
    started = time.perf_counter()
    proc = subprocess.run(
        [str(binary), "run"], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(
            f"symbiotic run failed in {home}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return seconds, proc.stdout


def refresh_step_seconds(home: Path) -> float:
    """Wall time of the step that refreshed the changed repositories, from Dagster's records.

    Unlike the difference of two whole runs it holds no fixed cost, so it stays readable
    when other jobs share the machine.
    """
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="git_refresh_changed"), limit=1)
        stats = instance.get_run_step_stats(runs[0].run_id)
    return sum((s.end_time or 0) - (s.start_time or 0) for s in stats)


def measure_size(root: Path, clones: list[Path], n: int) -> dict[str, Any]:
    home = root / f"home-{n}"
    if home.exists():
        shutil.rmtree(home)
    config = root / f"symbiotic-{n}.yaml"
    config.write_text(
        "repositories:\n" + "".join(f"  - path: {p}\n    name: {p.name}\n" for p in clones[:n]),
        encoding="utf-8",
    )
    first, _ = symbiotic_run(home, config)
    step = refresh_step_seconds(home)
    noop, out = symbiotic_run(home, config)
    if f"0 changed, {n} unchanged" not in out:
        raise SystemExit(f"the second run of {n} repositories was not a no-op:\n{out[-2000:]}")
    # the fingerprint check alone, in-process, as the schedule and the CLI run it
    from symbiotic_assets.core.config import RepositorySpec
    from symbiotic_assets.git.changes import plan_changes

    specs = [RepositorySpec(p.name, p) for p in clones[:n]]
    plan = plan_changes(home / "warehouse.duckdb", specs)
    assert not plan.changed, plan.changed
    return {"repositories": n, "first_run_s": first, "noop_run_s": noop,
            "refresh_step_s": step, "fingerprint_check_s": plan.seconds}  # fmt: skip


def measure_added(root: Path, clones: list[Path], small: int, large: int) -> dict[str, Any]:
    """Add ``large - small`` clones to the home that already holds ``small`` and run again.

    Only the added clones change, so this run's cost over a no-op run of the same home is
    what the extra repositories cost, without the first clones' work in either figure (the
    first clones of a run re-merge every merge at once, by as much as the machine's load
    decides, which swamps a difference of two whole runs).
    """
    home = root / f"home-{small}"
    config = root / f"symbiotic-{small}-plus-{large - small}.yaml"
    config.write_text(
        "repositories:\n" + "".join(f"  - path: {p}\n    name: {p.name}\n" for p in clones[:large]),
        encoding="utf-8",
    )
    noop_before, _ = symbiotic_run(home, root / f"symbiotic-{small}.yaml")
    added, out = symbiotic_run(home, config)
    if f"{large - small} changed" not in out:
        raise SystemExit(
            f"adding {large - small} repositories changed something else:\n{out[-2000:]}"
        )
    return {"noop_before_s": noop_before, "added_run_s": added,
            "added_refresh_step_s": refresh_step_seconds(home)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=PROJECT_ROOT,
                        help="repository to clone (default: this project's own)")  # fmt: skip
    parser.add_argument("--sizes", type=int, nargs=2, default=[2, 8], metavar=("SMALL", "LARGE"))
    parser.add_argument("--root", type=Path, default=None,
                        help="work folder (default: $SYMBIOTIC_HOME/bench/many-repos)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    small, large = sorted(args.sizes)
    if small < 1 or large <= small:
        parser.error("--sizes needs two different counts, the smaller at least 1")
    from symbiotic_assets.core.config import load_settings

    root = args.root or load_settings().home / "bench" / "many-repos"
    source = args.source.resolve()
    commits = subprocess.run(["git", "-C", str(source), "rev-list", "--all", "--count"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    print(f"source {source} ({commits} commits), sizes {small} and {large}, "
          f"{os.cpu_count()} cores, load {_load()}")  # fmt: skip
    if small < (os.cpu_count() or 1):
        print(f"warning: the smaller size ({small}) is below the core count ({os.cpu_count()}): "
              "clones extracted at once all re-merge, which inflates the marginal cost")  # fmt: skip
    clones = clone_many(source, root / "repos", large)
    baseline = git_log_seconds(clones[0])
    rows = [measure_size(root, clones, n) for n in (small, large)]
    span = large - small
    added = measure_added(root, clones, small, large)
    added_marginal = (added["added_run_s"] - added["noop_before_s"]) / span
    added_step = added["added_refresh_step_s"] / span
    first_marginal = (rows[1]["first_run_s"] - rows[0]["first_run_s"]) / span
    noop_marginal = (rows[1]["noop_run_s"] - rows[0]["noop_run_s"]) / span
    # the refresh step without the run's fixed costs; the first clone's full cost (every
    # merge judged, every text through the model) is in both sizes and cancels out
    step_marginal = (rows[1]["refresh_step_s"] - rows[0]["refresh_step_s"]) / span
    result = {
        "source": str(source),
        "commits_per_repository": int(commits),
        "cores": os.cpu_count(),
        "load_after": _load(),
        "git_log_all_numstat_s": baseline,
        "sizes": rows,
        "first_run_marginal_s_per_repo": first_marginal,
        "first_run_marginal_vs_git_log": first_marginal / baseline if baseline else None,
        "noop_marginal_s_per_repo": noop_marginal,
        "refresh_step_marginal_s_per_repo": step_marginal,
        "refresh_step_marginal_vs_git_log": step_marginal / baseline if baseline else None,
        "fingerprint_check_s_per_repo": rows[1]["fingerprint_check_s"] / large,
        "added": added,
        "added_run_marginal_s_per_repo": added_marginal,
        "added_run_marginal_vs_git_log": added_marginal / baseline if baseline else None,
        "added_step_s_per_repo": added_step,
        "added_step_vs_git_log": added_step / baseline if baseline else None,
        "goal_first_ratio": GOAL_FIRST_RATIO,
        "goal_noop_seconds": GOAL_NOOP_SECONDS,
        "first_goal_met": baseline > 0 and 0 <= first_marginal / baseline <= GOAL_FIRST_RATIO,
        "noop_goal_met": 0 <= noop_marginal <= GOAL_NOOP_SECONDS,
        # a negative difference means noise from other jobs swamped the marginal cost
        "noisy": first_marginal < 0 or noop_marginal < 0 or step_marginal < 0,
    }
    print(f"\n{'repositories':>12} {'first run s':>12} {'refresh step s':>15} "
          f"{'no-op run s':>12} {'fingerprints s':>15}")  # fmt: skip
    for r in rows:
        print(f"{r['repositories']:>12} {r['first_run_s']:>12.1f} {r['refresh_step_s']:>15.1f} "
              f"{r['noop_run_s']:>12.1f} {r['fingerprint_check_s']:>15.3f}")  # fmt: skip
    print(
        f"\nplain git log --all --numstat of one clone: {baseline:.3f} s\n"
        f"first run, per extra repository: {first_marginal:.2f} s = "
        f"{result['first_run_marginal_vs_git_log']:.1f}x git log (goal <= {GOAL_FIRST_RATIO:g}x): "
        f"{'met' if result['first_goal_met'] else 'NOT met'}\n"
        f"no-op run, per extra repository: {noop_marginal:.3f} s (goal <= {GOAL_NOOP_SECONDS} s): "
        f"{'met' if result['noop_goal_met'] else 'NOT met'}\n"
        f"refresh step alone, per extra repository: {step_marginal:.2f} s = "
        f"{result['refresh_step_marginal_vs_git_log']:.1f}x git log\n"
        f"{span} clones added to the home of {small}: run {added['added_run_s']:.1f} s against a "
        f"no-op {added['noop_before_s']:.1f} s, so {added_marginal:.2f} s = "
        f"{result['added_run_marginal_vs_git_log']:.1f}x git log per added repository; its "
        f"refresh step {added_step:.2f} s = {result['added_step_vs_git_log']:.1f}x per added "
        "repository\n"
        f"fingerprint check alone: {result['fingerprint_check_s_per_repo'] * 1000:.1f} ms per "
        f"repository\nload after: {result['load_after']}\n"
        "note: the clones share one history, so their commit texts after the first come "
        "from the embedding cache"
        + (
            "\nNOISY: a larger size ran faster; other jobs swamped the difference"
            if result["noisy"]
            else ""
        )
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
