"""Query latency of ``semantic_search`` at 100k and 1M commits, and ANN recall against exact.

The corpus is synthetic but shaped like the real thing: commit texts generated
from templates (verbs, subsystems, objects, file paths, issue references) go
through the real tokenizer and BM25; stored vectors are "random but clustered":
the cluster centres are real MiniLM embeddings of generated commit texts and each
commit is its centre plus Gaussian noise (cosine to the centre about 0.75), so
that real query embeddings land among them as they would among real commits.
Each measured query is embedded for real (ONNX, no cache hit: every query text
is distinct) and goes through the public ``semantic_search`` on a published
index (memory-mapped files, the serving path).

Reported per size: p50/p95/p99 latency (ms) of the whole call, of the embedding
alone, and recall@10 of the approximate semantic top-10 against exact search,
plus the agreement of the final fused top-10 with exact-vector fusion.

Run: ``python -m benchmarks.bench_search [--sizes 100000 1000000] [--queries 200]``;
``--cache DIR`` keeps the published corpora in ``DIR`` and reuses them next time
(the timing columns then show 0 s for generation and build).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

VERBS = ["Fix", "Add", "Refactor", "Remove", "Update", "Improve", "Handle", "Support", "Cache",
         "Validate", "Document", "Speed up", "Simplify", "Log", "Test", "Deprecate", "Rename"]  # fmt: skip
OBJECTS = ["retry backoff", "connection pool", "cache invalidation", "session cookies",
           "proxy authentication", "TLS certificate checks", "chunked uploads", "timeout handling",
           "JSON decoding", "redirect limits", "header casing", "rate limiter", "config loader",
           "plugin discovery", "fixture teardown", "assertion rewriting", "CLI arguments",
           "database migrations", "user permissions", "search index", "dark mode theme",
           "webhook signatures", "password reset emails", "metrics export", "thread safety",
           "memory leak", "unicode filenames", "build cache", "docker image", "release notes"]  # fmt: skip
SUBSYSTEMS = ["http", "auth", "storage", "api", "cli", "core", "web", "db", "worker", "scheduler",
              "billing", "search", "ui", "net", "config", "plugins", "tests", "docs"]  # fmt: skip
DETAILS = ["when the server closes the connection early", "for large payloads",
           "on Windows", "under heavy load", "to avoid a race", "behind a flag",
           "so that errors name the input", "with exponential delays", "for Python 3.12",
           "after the last refactor", "in the nightly job", "as reported by users"]  # fmt: skip


MODEL_ID = "all-MiniLM-L6-v2@onnx-int8-fused|commit-text-v1"


def commit_row(rng: np.random.Generator, topic: int) -> tuple[str, str, list[str]]:
    verb = VERBS[rng.integers(len(VERBS))]
    obj = OBJECTS[topic % len(OBJECTS)]
    sub = SUBSYSTEMS[(topic // len(OBJECTS)) % len(SUBSYSTEMS)]
    subject = f"{verb} {obj} in {sub}"
    if rng.random() < 0.2:
        subject += f" (#{rng.integers(1, 20000)})"
    body = DETAILS[rng.integers(len(DETAILS))] if rng.random() < 0.6 else ""
    fname = obj.split()[0].lower().replace("/", "") + ("_" + obj.split()[-1].lower())
    paths = [f"src/{sub}/{fname}.py"]
    if rng.random() < 0.5:
        paths.append(f"tests/{sub}/test_{fname}.py")
    return subject, body, paths


def build_corpus(n: int, embedder, seed: int = 0):  # type: ignore[no-untyped-def]
    from symbiotic_assets.search.index import CommitCorpus
    from symbiotic_assets.search.text import commit_text

    rng = np.random.default_rng(seed)
    n_topics = len(OBJECTS) * len(SUBSYSTEMS)
    topic_texts = [commit_row(rng, t)[0] for t in range(n_topics)]
    centres = embedder.embed_many(topic_texts, batch_size=64)
    topics = rng.integers(0, n_topics, n)
    rows = [commit_row(rng, int(t)) for t in topics]
    noise = 0.9 / np.sqrt(centres.shape[1])
    vectors = np.empty((n, centres.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        t = topics[start : start + 100_000]
        block = centres[t] + rng.normal(0, noise, (len(t), centres.shape[1])).astype(np.float32)
        vectors[start : start + len(t)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    start_ts = 1_500_000_000
    return CommitCorpus(
        hashes=[f"{rng.integers(0, 2**63):016x}{i:024x}" for i in range(n)],
        repositories=[f"repo-{i % 20}" for i in range(n)],
        authors=[f"Author {rng.integers(0, 500)}" for _ in range(n)],
        authored_at=np.sort(rng.integers(start_ts, start_ts + 8 * 365 * 86400, n)),
        is_merge=rng.random(n) < 0.1,
        subjects=[r[0] for r in rows],
        texts=[commit_text(*r) for r in rows],
        paths=[r[2] for r in rows],
        vectors=vectors,
    )


def queries(k: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    forms = ["where did we change the {o} in {s}", "{o} broken in {s} {d}", "who touched {o}",
             "commit that fixed {o} {d}", "{s} {o}"]  # fmt: skip
    out: list[str] = []
    for i in range(k):
        form = forms[i % len(forms)]
        text = form.format(o=OBJECTS[rng.integers(len(OBJECTS))],
                           s=SUBSYSTEMS[rng.integers(len(SUBSYSTEMS))],
                           d=DETAILS[rng.integers(len(DETAILS))])  # fmt: skip
        out.append(f"{text} ({i})")  # distinct text: no embedding cache hit
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep each published corpus under this folder and reuse it on the next run",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from symbiotic_assets.search import api
    from symbiotic_assets.search.index import SearchIndex, load_published, publish
    from symbiotic_assets.search.text import parse_query

    rows: list[str] = []
    for n in args.sizes:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
            embedder = api.embedder_for(MODEL_ID)
            root = (args.cache / f"search-{n}") if args.cache else Path(tmp) / "search"
            t_gen = t_build = 0.0
            if not (root / "CURRENT").is_file():
                corpus = build_corpus(n, embedder)
                t_gen = time.perf_counter() - t0
                t0 = time.perf_counter()
                index = SearchIndex.build(corpus, MODEL_ID)
                del corpus
                publish(index, root)
                del index
                t_build = time.perf_counter() - t0
            served = load_published(root)
            qs = queries(args.queries, seed=n)
            for q in queries(10, seed=7):  # warm up: model, page cache
                api.semantic_search(q, index_root=root)
            total: list[float] = []
            embed: list[float] = []
            for q in qs:
                t = time.perf_counter()
                api.semantic_search(q, index_root=root)
                total.append(time.perf_counter() - t)
            for q in qs:
                t = time.perf_counter()
                embedder.embed_one(q + " again")
                embed.append(time.perf_counter() - t)
            recall: list[float] = []
            agree: list[float] = []
            mask = served.filter_mask()
            for q in qs[:100]:
                vec = embedder.embed_one(q)
                approx, _ = served.semantic_top(vec, 10, mask)
                exact, _ = served.semantic_top(vec, 10, mask, exact=True)
                recall.append(len(set(approx.tolist()) & set(exact.tolist())) / 10)
                p = parse_query(q)
                fa = {h.doc for h in served.rank(p, vec, 10, mask)}
                fe = {h.doc for h in served.rank(p, vec, 10, mask, exact=True)}
                agree.append(len(fa & fe) / 10)
            ann = (
                f"IVF {len(served.ivf.centroids)} lists, nprobe {served.ivf.nprobe}"
                if served.ivf
                else "exact"
            )
            rows.append(
                f"| {n:>9,} | {pct(total, 50):6.1f} | {pct(total, 95):6.1f} | {pct(total, 99):6.1f} "
                f"| {pct(embed, 50):5.1f} | {pct(embed, 95):5.1f} | {np.mean(recall):.3f} "
                f"| {np.mean(agree):.3f} | {ann} | {t_gen:.0f}s + {t_build:.0f}s |"
            )
            print(rows[-1], flush=True)
            del served
            api._indexes.clear()
    print()
    print("| commits | p50 ms | p95 ms | p99 ms | embed p50 | embed p95 | ANN recall@10 "
          "| fused top-10 = exact | vector index | generate + build |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
