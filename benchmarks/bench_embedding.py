"""Issue embedding speed: single-issue p50/p95 and batch throughput, torch vs ONNX.

The torch (sentence-transformers) backend is the baseline measured in the same
run; ratios are baseline time / candidate time. The embedders run without the
content-hash cache, so every timed text goes through the model. Agreement is the
mean (and minimum) cosine between each ONNX variant and torch on the same texts.

Run: ``python -m benchmarks.bench_embedding``.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field

import numpy as np

from benchmarks.fix_history import generate_history
from symbiotic_assets.core.embedding import IssueEmbedder, issue_text


@dataclass
class Samples:
    single_s: list[float] = field(default_factory=list)
    batch_rates: list[float] = field(default_factory=list)
    cpu_per_text_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        return {
            "cpu_ms_per_text": float(np.median(self.cpu_per_text_s)) * 1000,
            "p50_ms": float(np.percentile(self.single_s, 50) * 1000),
            "p95_ms": float(np.percentile(self.single_s, 95) * 1000),
            "texts_per_s": float(np.median(self.batch_rates)),
        }


def measure_round(
    embedder: IssueEmbedder, texts: list[str], singles: list[str], batch: int, out: Samples
) -> None:
    """One round for one backend: each single text alone, then all texts batched."""
    for text in singles:
        t = time.perf_counter()
        embedder.embed_one(text)
        out.single_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    c = time.process_time()
    embedder.embed_many(texts, batch_size=batch)
    out.batch_rates.append(len(texts) / (time.perf_counter() - t))
    out.cpu_per_text_s.append((time.process_time() - c) / len(texts))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--singles", type=int, default=200, help="single texts per backend")
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="rounds over all backends")
    args = parser.parse_args(argv)
    history = generate_history(n=args.texts, seed=5)
    texts = list(
        dict.fromkeys(
            issue_text(a.issue_type, a.message, a.file_path, a.stage) for a in history.attempts
        )
    )

    variants = {
        "torch": IssueEmbedder(backend="torch", cache_size=0),
        "onnx-fp32": IssueEmbedder(backend="onnx", quantize=False, cache_size=0),
        "onnx-int8": IssueEmbedder(backend="onnx", fuse_attention=False, cache_size=0),
        "int8-fused": IssueEmbedder(backend="onnx", fuse_attention=True, cache_size=0),
    }
    reference = variants["torch"].embed_many(texts[:300])
    for emb in variants.values():
        emb.warm_up()
    # Backends take turns, round by round and in rotating order, and each figure is
    # the median over rounds: this machine's speed drifts by a third over tens of
    # seconds, which would otherwise decide which backend looks faster.
    samples = {name: Samples() for name in variants}
    per_round = max(1, args.singles // args.repeats)
    names = list(variants)
    for rnd in range(args.repeats):
        singles = [texts[(rnd * per_round + j) % len(texts)] for j in range(per_round)]
        for name in names[rnd % len(names) :] + names[: rnd % len(names)]:
            measure_round(variants[name], texts, singles, args.batch_size, samples[name])
    rows = {}
    for name, emb in variants.items():
        rows[name] = samples[name].summary()
        cos = (emb.embed_many(texts[:300]) * reference).sum(axis=1)
        rows[name]["agree_mean"] = float(cos.mean())
        rows[name]["agree_min"] = float(cos.min())
    base = rows["torch"]
    print(f"load average {os.getloadavg()[0]:.2f} (1 min); cpu ms/text counts all threads")
    print(
        f"{'backend':<10} {'p50 ms':>8} {'p95 ms':>8} {'texts/s':>9} {'x p50':>7} {'x batch':>8} "
        f"{'cos mean':>9} {'cos min':>8} {'cpu ms/text':>11}"
    )
    for name, r in rows.items():
        print(
            f"{name:<10} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {r['texts_per_s']:>9.0f} "
            f"{base['p50_ms'] / r['p50_ms']:>7.2f} {r['texts_per_s'] / base['texts_per_s']:>8.2f} "
            f"{r['agree_mean']:>9.4f} {r['agree_min']:>8.4f} {r['cpu_ms_per_text']:>11.2f}"
        )


if __name__ == "__main__":
    main()
