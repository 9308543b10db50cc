"""semantic_search end to end on a published index, against the previous implementation.

What production does, measured: the index is published with
``search.index.publish_streamed`` (the writer ``search/serving_index`` uses: vectors
streamed in chunks into the version folder), opened by the API the way a CLI or
MCP process does (``load_published``, memory-mapped; open time reported) and
queried through ``search.api.semantic_search`` (embedding with the real model
included; every query text is new, so no cache hit).

The corpus is real text: commit messages of the git repositories given (this
checkout by default; ``--repo`` adds clones) and generated issue texts
(``benchmarks.vector_data``), each stored commit being one of those texts with
its real MiniLM vector perturbed (noise + renormalise) to reach the size asked.
Queries are the first words of held-out texts, never stored, different per size.

Reported per size, with the previous implementation in the same run on the same
vectors and queries: end-to-end p50/p95; recall@10 and recall@100 (the ranker's
candidates) of the vector stage against exact search, ours and the previous
hand-written IVF; BM25 top-100 p50/p95 by impact-ordered postings vs summing
every posting (the previous ``top``); open time.

Run: ``python -m benchmarks.bench_search --sizes 100000 1000000 [--repo PATH ...]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_vectors import OldIVF
from benchmarks.vector_data import base_set, grow_with_sources, repositories
from symbiotic_assets.core.vectors import exact_top, one_thread

MODEL_ID = "all-MiniLM-L6-v2@onnx-int8-fused|commit-text-v1"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def vary(text: str, rng: np.random.Generator) -> str:
    """One stored copy of ``text``: about one word in ten dropped, sometimes an issue reference.

    Real histories rarely repeat a message word for word; thousands of verbatim
    copies would tie in BM25 and make every lexical top-k a tie-break over them.
    """
    words = text.split()
    keep = rng.random(len(words)) >= 0.1
    kept = [w for w, k in zip(words, keep.tolist(), strict=True) if k] or words[:1]
    if rng.random() < 0.3:
        kept.append(f"(#{int(rng.integers(1, 200_000))})")
    return " ".join(kept)


def corpus_for(texts: list[str], owner: np.ndarray, seed: int):  # type: ignore[no-untyped-def]
    from symbiotic_assets.search.index import CommitCorpus

    n = len(owner)
    rng = np.random.default_rng(seed)
    repo = repositories(n, seed=seed)
    start = 1_500_000_000
    stored = [vary(texts[o], rng) for o in owner.tolist()]
    return CommitCorpus(
        hashes=[f"{h:040x}" for h in rng.integers(0, 2**62, n)],
        repositories=[f"repo-{r}" for r in repo.tolist()],
        authors=[f"Author {a}" for a in rng.integers(0, 500, n).tolist()],
        authored_at=np.sort(rng.integers(start, start + 8 * 365 * 86400, n)),
        is_merge=rng.random(n) < 0.05,
        subjects=[t.split(". ")[0][:120] for t in stored],
        texts=stored,
        paths=[[] for _ in range(n)],
        vectors=np.zeros((n, 0), dtype=np.float32),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--base", type=int, default=24_000,
                        help="distinct real texts (commit messages first, then issue texts)")  # fmt: skip
    parser.add_argument("--repo", type=Path, action="append", default=None,
                        help="git repository whose commit messages join the base texts")  # fmt: skip
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from symbiotic_assets.search import api
    from symbiotic_assets.search.index import load_published, publish_streamed
    from symbiotic_assets.search.text import tokenize

    base = base_set(args.repo or [Path(".")], base=args.base)
    stored_texts = [base.texts[i] for i in base.stored]
    held = [base.texts[i] for i in base.held_out]
    embedder = api.embedder_for(MODEL_ID)
    embedder.warm_up()
    rows: list[str] = []
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores", flush=True)
    for si, n in enumerate(args.sizes):
        vectors, owner = grow_with_sources(base, n, seed=si)
        corpus = corpus_for(stored_texts, owner, seed=si)
        qs = [
            " ".join(held[(si * args.queries + j) % len(held)].split()[:8]) + f" ({si}-{j})"
            for j in range(args.queries)
        ]  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
            root = Path(tmp) / "search"
            t0 = time.perf_counter()
            chunks = ((np.arange(s, min(n, s + 65_536)), vectors[s : s + 65_536])
                      for s in range(0, n, 65_536))  # fmt: skip
            publish_streamed(root, corpus, chunks, vectors.shape[1], MODEL_ID)
            t_publish = time.perf_counter() - t0
            del corpus
            t0 = time.perf_counter()
            served = load_published(root)
            t_open = time.perf_counter() - t0
            api._indexes.clear()
            for q in ["warm up the model", "and the page cache"]:
                api.semantic_search(q, index_root=root)
            total: list[float] = []
            for q in qs:
                t = time.perf_counter()
                api.semantic_search(q, index_root=root)
                total.append(time.perf_counter() - t)
            qvecs = [embedder.embed_one(q) for q in qs]
            old = OldIVF(vectors)
            rec: dict[str, list[float]] = {"ours10": [], "ours100": [], "old10": [], "old100": []}
            sem_ours: list[float] = []
            sem_old: list[float] = []
            with one_thread():
                for qv in qvecs[:100]:
                    for k in (10, 100):
                        truth = set(exact_top(vectors, qv, k)[0].tolist())
                        t = time.perf_counter()
                        ours = set(served.semantic_top(qv, k)[0].tolist())
                        if k == 100:
                            sem_ours.append(time.perf_counter() - t)
                        t = time.perf_counter()
                        prev = set(old.search(qv, k, None).tolist())
                        if k == 100:
                            sem_old.append(time.perf_counter() - t)
                        rec[f"ours{k}"].append(len(ours & truth) / k)
                        rec[f"old{k}"].append(len(prev & truth) / k)
                lex_new: list[float] = []
                lex_old: list[float] = []
                for q in qs:
                    terms = tokenize(q)
                    t = time.perf_counter()
                    a = served.bm25.top(terms, 100)
                    lex_new.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    b = served.bm25.top_exhaustive(terms, 100)
                    lex_old.append(time.perf_counter() - t)
                    if not np.array_equal(a[1], b[1]):
                        raise AssertionError(f"BM25 top-100 differs for {q!r}")
            rows.append(
                f"| {n:,} | {pct(total, 50):.1f} | {pct(total, 95):.1f} "
                f"| {np.mean(rec['ours10']):.3f} / {np.mean(rec['old10']):.3f} "
                f"| {np.mean(rec['ours100']):.3f} / {np.mean(rec['old100']):.3f} "
                f"| {pct(sem_ours, 50):.2f} / {pct(sem_old, 50):.2f} "
                f"| {pct(lex_new, 50):.2f} / {pct(lex_new, 95):.2f} "
                f"| {pct(lex_old, 50):.2f} / {pct(lex_old, 95):.2f} "
                f"| {t_open * 1000:.0f} | {t_publish:.0f} | {served.ann_description()} |"
            )
            print(rows[-1], flush=True)
            del served, old
            api._indexes.clear()
    print(f"\nload average {os.getloadavg()[0]:.2f} (1 min)")
    print("| commits | search p50 ms | p95 ms | recall@10 ours / previous IVF "
          "| recall@100 ours / previous | vector top-100 p50 ms ours / previous "
          "| BM25 top-100 impact p50 / p95 | BM25 sum-all p50 / p95 | open ms | publish s "
          "| vector index |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
