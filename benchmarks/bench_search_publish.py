"""search publish from a warehouse: time and peak memory of a full publish, then of a no-op one.

Builds a DuckDB warehouse with ``--commits`` commits (the ``git.commits`` /
``git.commit_files`` columns the publish reads, and ``search.commit_embeddings``
filled through Arrow with real MiniLM vectors grown by perturbation, see
``benchmarks.vector_data``), then runs ``publish_from_warehouse`` (what the
``search/serving_index`` asset runs) in a fresh process each time, so the peak
resident memory reported (the child's own ``VmHWM``) is the publish's own: first
a full publish, then a second run with nothing changed, then one after 1% new
commits. Goal at 1M commits: peak at most 1 GiB, a no-op publish within 1 s.

Run: ``python -m benchmarks.bench_search_publish --commits 1000000 [--repo PATH ...]
[--warehouse FILE]`` (``--warehouse`` keeps the filled warehouse for the next run;
filling 1M commits takes a minute or two and about 2.5 GB of disk).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = "all-MiniLM-L6-v2@onnx-int8-fused|commit-text-v1"

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS git;
CREATE TABLE IF NOT EXISTS git.commits (repository VARCHAR, hash VARCHAR, author_name VARCHAR,
    author_email VARCHAR, authored_at TIMESTAMPTZ, is_merge BOOLEAN, subject VARCHAR,
    body VARCHAR, is_reachable BOOLEAN);
CREATE TABLE IF NOT EXISTS git.commit_files (repository VARCHAR, commit_hash VARCHAR,
    path VARCHAR);
"""


def fill(db: Path, start: int, n: int, repos: list[Path], seed: int) -> None:
    import duckdb
    import pyarrow as pa

    from benchmarks.vector_data import base_set, grow_with_sources, repositories
    from symbiotic_assets.search.commit_embeddings import ensure_search_schema, vector_array

    base = base_set(repos)
    texts = [base.texts[i] for i in base.stored]
    con = duckdb.connect(str(db))
    con.execute(SCHEMA)
    ensure_search_schema(con)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        vectors, owner = grow_with_sources(base, m, seed=seed + s)
        rng = np.random.default_rng(seed + s)
        ids = np.arange(start + s, start + s + m)
        hashes = [f"{i:040x}" for i in ids.tolist()]
        repo = [f"repo-{r}" for r in repositories(m, seed=seed + s).tolist()]
        msgs = [texts[o] for o in owner.tolist()]
        commits = pa.table({
            "repository": repo, "hash": hashes,
            "author_name": [f"Author {a}" for a in rng.integers(0, 500, m).tolist()],
            "author_email": ["a@example.org"] * m,
            "authored_at": pa.array((1_500_000_000 + ids * 60) * 1_000_000, pa.timestamp("us", "UTC")),
            "is_merge": rng.random(m) < 0.05, "subject": [t[:80] for t in msgs], "body": msgs,
            "is_reachable": [True] * m,
        })  # fmt: skip
        files = pa.table({"repository": repo, "commit_hash": hashes,
                          "path": [f"src/mod{o % 300}/file{o % 7}.py" for o in owner.tolist()]})  # fmt: skip
        emb = pa.table({"repository": repo, "hash": hashes, "model": [MODEL] * m,
                        "text_sha256": [f"{o:064x}" for o in owner.tolist()],
                        "vector": vector_array(vectors)})  # fmt: skip
        for name, table in (("_c", commits), ("_f", files), ("_e", emb)):
            con.register(name, table)
        con.execute("INSERT INTO git.commits SELECT * FROM _c")
        con.execute("INSERT INTO git.commit_files SELECT * FROM _f")
        con.execute("INSERT INTO search.commit_embeddings SELECT repository, hash, model, "
                    "text_sha256, vector::FLOAT[384], now()::TIMESTAMP FROM _e")  # fmt: skip
        for name in ("_c", "_f", "_e"):
            con.unregister(name)
    con.close()


def peak_rss_mb() -> float:
    """This process's own peak resident memory (``VmHWM``), in MB.

    Not ``ru_maxrss``: Linux carries it across ``fork``/``execve``, so a child
    started by a parent that filled a warehouse reported the parent's peak.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def publish_once(db: Path, root: Path) -> None:
    """Child process: one publish_from_warehouse; prints seconds, changed, peak RSS as JSON."""
    import duckdb

    import symbiotic_assets.search.index  # noqa: F401 - imported before timing, as in Dagster
    from symbiotic_assets.search.commit_embeddings import publish_from_warehouse

    con = duckdb.connect(str(db))
    t = time.perf_counter()
    result = publish_from_warehouse(con, root, MODEL)
    elapsed = time.perf_counter() - t
    peak = peak_rss_mb()
    print(json.dumps({"seconds": elapsed, "changed": result.changed, "commits": result.commits,
                      "peak_mb": peak, "ann": result.ann}))  # fmt: skip


def child(db: Path, root: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_search_publish", "--child", str(db), str(root)],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"publish process failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=200_000)
    parser.add_argument("--repo", type=Path, action="append", default=None)
    parser.add_argument(
        "--warehouse", type=Path, default=None,
        help="keep the filled warehouse in this file and reuse it on later runs (each run "
        "publishes from a copy, so the 1%% step never changes it)",
    )  # fmt: skip
    parser.add_argument("--child", nargs=2, type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        publish_once(*args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-search-publish-") as tmp:
        db, root = Path(tmp) / "warehouse.duckdb", Path(tmp) / "search"
        t = time.perf_counter()
        kept = args.warehouse
        if kept is None or not kept.is_file():
            fill(db, 0, args.commits, args.repo or [Path(".")], seed=0)
            if kept is not None:
                shutil.copyfile(db, kept)
        else:
            shutil.copyfile(kept, db)
        print(f"warehouse with {args.commits:,} commits ready in {time.perf_counter() - t:.0f} s; "
              f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        print("| run | commits | seconds | peak RSS MB | new version | vector index |")
        print("|---|---|---|---|---|---|")
        for label in ("full publish", "no-op (nothing changed)", "after 1% new commits"):
            if label.startswith("after"):
                fill(db, args.commits, max(1, args.commits // 100), args.repo or [Path(".")], 7)
            r = child(db, root)
            print(f"| {label} | {r['commits']:,} | {r['seconds']:.2f} | {r['peak_mb']:.0f} "
                  f"| {'yes' if r['changed'] else 'no'} | {r['ann']} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
