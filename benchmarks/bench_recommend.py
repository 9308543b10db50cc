"""Recommendation latency end to end at 100k and 1M stored attempts, and IVF recall@10.

End to end = embed the query issue with the real model (ONNX backend, cache
bypassed by a unique text per query) + neighbour search + scoring. The stored
history is synthetic: vectors are real embeddings of generated issues
(``benchmarks.fix_history``) perturbed with Gaussian noise (row-to-centre
cosine about 0.8 to 0.95), so they cluster the way issue embeddings do; outcome
columns come from the generator's truth. The baseline in the same run is exact
search; the ratio printed is exact p95 / approximate p95.

Run: ``python -m benchmarks.bench_recommend --sizes 100000 1000000``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.fix_history import generate_history
from symbiotic_assets.core.embedding import IssueEmbedder, issue_text
from symbiotic_assets.core.vectors import ExactIndex, IVFIndex, recall_at_k
from symbiotic_assets.memory.recommender import AttemptMemory, RecommenderState, recommend, to_epoch


def synthetic_memory(
    n: int,
    centres: np.ndarray,
    centre_meta: list[tuple[str, str, float]],
    seed: int = 0,
    chunk: int = 100_000,
) -> AttemptMemory:
    """``n`` rows around ``centres``; ``centre_meta`` = (issue_type, agent:strategy, p_success)."""
    rng = np.random.default_rng(seed)
    dim = centres.shape[1]
    vectors = np.empty((n, dim), dtype=np.float32)
    owner = rng.integers(0, centres.shape[0], size=n)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        sigma = rng.uniform(0.016, 0.04, size=(e - s, 1)).astype(np.float32)
        block = centres[owner[s:e]] + rng.standard_normal((e - s, dim), dtype=np.float32) * sigma
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        vectors[s:e] = block
    types = np.array([m[0] for m in centre_meta], dtype=object)[owner]
    cands = np.array([m[1] for m in centre_meta], dtype=object)[owner]
    probs = np.array([m[2] for m in centre_meta])[owner]
    success = rng.random(n) < probs
    timestamps = np.sort(
        rng.uniform(
            to_epoch("2024-01-01T00:00:00+00:00"), to_epoch("2025-12-31T00:00:00+00:00"), size=n
        )
    )
    return AttemptMemory.from_arrays(vectors, types, cands, success, timestamps)


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000.0, q))


def run(sizes: list[int], queries: int, n_probe: int, max_scan: int, seed: int) -> None:
    embedder = IssueEmbedder()
    embedder.warm_up()
    history = generate_history(n=4000, seed=seed)
    texts = [issue_text(a.issue_type, a.message, a.file_path, a.stage) for a in history.attempts]
    centres = embedder.embed_many(texts[:2000])
    meta = [
        (
            a.issue_type,
            a.agent_strategy,
            history.success_probability(a.kind, a.agent_strategy, a.timestamp),
        )
        for a in history.attempts[:2000]
    ]
    query_items = history.attempts[2000 : 2000 + queries]
    state = RecommenderState()
    now = to_epoch("2026-01-01T00:00:00+00:00")
    print(
        f"{'rows':>9} {'index':>6} {'p50 ms':>8} {'p95 ms':>8} {'search p95':>11} {'recall@10':>10} {'build s':>8} {'cpu p50':>8} {'cpu p95':>8}"
    )
    print(f"load average {os.getloadavg()[0]:.2f} (1 min); cpu = process CPU ms per query")
    for n in sizes:
        t0 = time.perf_counter()
        memory = synthetic_memory(n, centres, meta, seed=seed)
        exact = ExactIndex(memory.vectors, validate=False)
        t1 = time.perf_counter()
        ivf = IVFIndex.build(memory.vectors, n_probe=n_probe, max_scan=max_scan, seed=seed)
        t_build = time.perf_counter() - t1
        query_vecs = []
        results: dict[str, tuple[list[float], list[float], list[float]]] = {}
        for name, index in (("exact", exact), ("ivf", ivf)):
            totals: list[float] = []
            searches: list[float] = []
            cpus: list[float] = []
            for j, a in enumerate(query_items):
                # a unique suffix defeats the embedding cache: the model runs every time
                text = issue_text(
                    a.issue_type, f"{a.message} [{name}{n}-{j}]", a.file_path, a.stage
                )
                s = time.perf_counter()
                c = time.process_time()
                q = embedder.embed_one(text)
                rec = recommend(q, a.issue_type, memory, state, now=now, index=index)
                totals.append(time.perf_counter() - s)
                cpus.append(time.process_time() - c)
                s_search = time.perf_counter()
                index.search(q, state.config.top_k)
                searches.append(time.perf_counter() - s_search)
                if rec is None:
                    raise RuntimeError(f"no recommendation for query {j} at {n} rows")
                if name == "exact":
                    query_vecs.append(q)
            results[name] = (totals, searches, cpus)
        recall = recall_at_k(ivf, exact, np.stack(query_vecs), k=10)
        for name in ("exact", "ivf"):
            totals, searches, cpus = results[name]
            print(
                f"{n:>9} {name:>6} {percentile_ms(totals, 50):>8.2f} {percentile_ms(totals, 95):>8.2f} "
                f"{percentile_ms(searches, 95):>11.2f} "
                f"{(recall if name == 'ivf' else 1.0):>10.3f} "
                f"{(t_build if name == 'ivf' else t1 - t0):>8.1f} "
                f"{percentile_ms(cpus, 50):>8.2f} {percentile_ms(cpus, 95):>8.2f}"
            )
        ratio = percentile_ms(results["exact"][0], 95) / percentile_ms(results["ivf"][0], 95)
        print(
            f"{n:>9} ivf end-to-end p95 is x{ratio:.1f} faster than exact; "
            f"{ivf.centroids.shape[0]} lists, n_probe {ivf.n_probe}, max_scan {ivf.max_scan}"
        )
        del memory, exact, ivf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--n-probe", type=int, default=12)
    parser.add_argument("--max-scan", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    for size in args.sizes:
        if size < 1000:
            parser.error(f"--sizes {size}: need at least 1000 rows")
    run(args.sizes, args.queries, args.n_probe, args.max_scan, args.seed)


if __name__ == "__main__":
    main()
