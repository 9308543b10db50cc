"""recommend_strategy end to end on a published recommender, against the previous implementation.

What production does, measured: the history is published with
``memory.serving.publish`` (the ``memory/recommender_index`` asset's writer), opened
with ``load_published`` (the CLI/MCP path; cold-open time reported) and queried
through ``memory.api.recommend_strategy`` (embedding with the real model
included; a unique suffix per query defeats the embedding cache).

Stored vectors are real MiniLM embeddings (``benchmarks.vector_data``: commit
messages and generated issue texts) grown by perturbation to the size asked;
each row's issue type, ``agent:strategy`` and outcome come from the generated
history of the text it grew from. Query issues are generated issues never
stored, different for every size.

Baselines in the same run, same vectors, same query vectors:

* ``previous``: what production served before: exact numpy search below 200k
  rows (BLAS with its default threads), the hand-written IVF above;
* ``numpy top-10``: a bare exact scan (``vectors @ q`` + partial sort), no embedding.

Also recall@64 (the neighbours the recommender votes over) of the served index
against exact search.

Run: ``python -m benchmarks.bench_recommend --sizes 100000 1000000 [--repo PATH ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_vectors import OldIVF
from benchmarks.fix_history import generate_history
from benchmarks.vector_data import base_set, grow_with_sources
from symbiotic_assets.core.embedding import IssueEmbedder, issue_text
from symbiotic_assets.core.vectors import exact_top
from symbiotic_assets.memory.recommender import RecommenderState, recommend, to_epoch

PREVIOUS_EXACT_BELOW = 200_000


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def run(sizes: list[int], queries: int, repos: list[Path], seed: int) -> list[str]:
    from symbiotic_assets.memory import api, serving

    base = base_set(repos)
    history = generate_history(n=len(base.stored), seed=seed)
    meta = [
        (a.issue_type, a.agent_strategy, history.success_probability(a.kind, a.agent_strategy,
                                                                       a.timestamp))
        for a in history.attempts
    ]  # fmt: skip
    asked = generate_history(n=queries * len(sizes), seed=seed + 100).attempts
    embedder = IssueEmbedder()
    embedder.warm_up()
    state = RecommenderState()
    now = to_epoch("2026-01-01T00:00:00+00:00")
    rows: list[str] = []
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores", flush=True)
    for si, n in enumerate(sizes):
        vectors, owner = grow_with_sources(base, n, seed=si)
        rng = np.random.default_rng(si)
        types = np.array([m[0] for m in meta], dtype=object)[owner]
        cands = np.array([m[1] for m in meta], dtype=object)[owner]
        success = rng.random(n) < np.array([m[2] for m in meta])[owner]
        stamps = np.sort(rng.uniform(now - 365 * 86400, now, n))
        items = asked[si * queries : (si + 1) * queries]
        with tempfile.TemporaryDirectory(prefix="bench-recommend-") as tmp:
            root = Path(tmp) / "recommender"
            t0 = time.perf_counter()
            serving.publish(
                root,
                vectors=vectors,
                attempt_ids=np.arange(n),
                issue_types=types.tolist(),
                agent_strategies=cands.tolist(),
                success=success,
                timestamps=stamps,
                messages=[""] * n,
                file_paths=[""] * n,
                state_json=json.dumps({"state": json.loads(state.to_json())}),
                model=embedder.model_id,
            )
            t_publish = time.perf_counter() - t0
            t0 = time.perf_counter()
            published = serving.load_published(root)
            t_open = time.perf_counter() - t0
            api._recommenders = None  # the API opens it itself, as a CLI process would
            api._embedder_for(embedder.model_id).warm_up()
            served: list[float] = []
            qvecs: list[np.ndarray] = []
            for j, a in enumerate(items):
                issue = {"issue_type": a.issue_type, "message": f"{a.message} [{n}-{j}]",
                         "file_path": a.file_path, "stage": a.stage}  # fmt: skip
                t = time.perf_counter()
                out = api.recommend_strategy(issue, root=root, now=None)
                served.append(time.perf_counter() - t)
                if out.status != "ok" and out.agent is None:
                    raise RuntimeError(f"query {j} at {n} rows: {out.status} {out.reason}")
                qvecs.append(embedder.embed_one(issue_text(
                    a.issue_type, issue["message"], a.file_path, a.stage)))  # fmt: skip
            memory = published.memory
            old = OldIVF(np.ascontiguousarray(vectors)) if n >= PREVIOUS_EXACT_BELOW else None
            previous: list[float] = []
            bare: list[float] = []
            for j, a in enumerate(items):
                text = issue_text(a.issue_type, f"{a.message} [prev{n}-{j}]", a.file_path, a.stage)
                t = time.perf_counter()
                q = embedder.embed_one(text)
                if old is None:
                    recommend(q, a.issue_type, memory, state, now=now)  # exact, default threads
                else:
                    recommend(
                        q, a.issue_type, memory, state, now=now, index=_OldSearch(old, vectors)
                    )
                previous.append(time.perf_counter() - t)
                t = time.perf_counter()
                scores = vectors @ qvecs[j]
                top = np.argpartition(-scores, 9)[:10]
                top[np.argsort(-scores[top])]
                bare.append(time.perf_counter() - t)
            k = state.config.top_k
            assert published.index is not None
            recall = np.mean([
                len(set(published.index.search(q, k)[0].tolist())
                    & set(exact_top(vectors, q, k)[0].tolist())) / k
                for q in qvecs[:100]
            ])  # fmt: skip
            prev_name = "exact numpy" if old is None else "old IVF"
            rows.append(
                f"| {n:,} | {pct(served, 50):.1f} | {pct(served, 95):.1f} | {prev_name} "
                f"{pct(previous, 50):.1f} / {pct(previous, 95):.1f} | {pct(bare, 50):.1f} / "
                f"{pct(bare, 95):.1f} | {recall:.3f} | {t_open * 1000:.0f} | {t_publish:.0f} "
                f"| {published.index.kind if published.index else '-'} |"
            )
            print(rows[-1], flush=True)
            del published, memory, old
            api._recommenders = None
    return rows


class _OldSearch:
    """The previous IVF behind the ``search(q, k)`` the recommender calls."""

    def __init__(self, old: OldIVF, vectors: np.ndarray) -> None:
        self.old, self.vectors = old, vectors

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        ids = self.old.search(q, k, None)
        return ids, np.asarray(self.vectors[ids] @ q)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repo", type=Path, action="append", default=None,
                        help="git repository whose commit messages join the base texts")  # fmt: skip
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for size in args.sizes:
        if size < 1000:
            parser.error(f"--sizes {size}: need at least 1000 rows")
    rows = run(args.sizes, args.queries, args.repo or [Path(".")], args.seed)
    print(f"\nload average {os.getloadavg()[0]:.2f} (1 min)")
    print("| attempts | recommend_strategy p50 ms | p95 ms | previous p50 / p95 ms "
          "| bare numpy top-10 p50 / p95 ms | recall@64 | open ms | publish s | index |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
