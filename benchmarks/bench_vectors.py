"""Vector index libraries side by side on the same real MiniLM vectors (picks the serving index).

Candidates, each built on the same rows and asked the same held-out queries:

* ``numpy``: exact matrix-vector product (the reference, one BLAS thread);
* ``old-ivf``: the hand-written IVF the recommender served before (kept here as
  the baseline);
* ``faiss-flat``, ``faiss-ivf`` (IVFFlat), ``faiss-ivf-pq4fs`` (what
  ``core/vectors.py`` serves: IVF over 4-bit fast-scan product codes, exact
  re-rank from the float rows) and ``faiss-ivf-sq8`` (what it served before: the
  same lists, probes and re-rank over 8-bit scalar codes);
* ``hnswlib`` and ``usearch`` (HNSW graphs).

Per size and index: build seconds, resident memory added by the build, bytes on
disk, cold open (memory-mapped where the library can), single-threaded query
p50/p95 for top-10, recall@10, recall@64 (the recommender's neighbours) and
recall@100 (the search ranker's candidates) against exact search, and the same
for queries filtered to one repository (about 3% of rows).

Vectors come from ``benchmarks.vector_data`` (real commit messages and issue
texts, embedded, grown by perturbation); every size gets fresh queries.

Run: ``python -m benchmarks.bench_vectors --sizes 100000 1000000 --repo PATH ...``.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.vector_data import base_set, grow, queries_for, repositories
from symbiotic_assets.core.vectors import (
    VectorIndex,
    default_lists,
    default_nprobe,
    exact_top,
    load_index,
    one_thread,
    train_size,
)

Search = Callable[[np.ndarray, int, "np.ndarray | None"], np.ndarray]


# --------------------------------------------------------------------------- previous IVF
class OldIVF:
    """The IVF index the recommender served before this benchmark (baseline, unchanged rules)."""

    def __init__(self, vectors: np.ndarray, seed: int = 0, n_probe: int = 12) -> None:
        n = vectors.shape[0]
        rng = np.random.default_rng(seed)
        n_lists = max(1, int(np.sqrt(n)))
        sample = vectors if n <= 65_536 else vectors[rng.choice(n, 65_536, replace=False)]
        cent = sample[rng.choice(sample.shape[0], n_lists, replace=False)].copy()
        for _ in range(12):
            assign = self._assign(sample, cent)
            sums = np.zeros_like(cent)
            np.add.at(sums, assign, sample)
            counts = np.bincount(assign, minlength=n_lists)
            empty = np.flatnonzero(counts == 0)
            if empty.size:
                sums[empty] = sample[rng.choice(sample.shape[0], empty.size, replace=False)]
            cent = (sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)).astype(
                np.float32
            )
        assign = self._assign(vectors, cent)
        order = np.argsort(assign, kind="stable")
        counts = np.bincount(assign, minlength=n_lists)
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.centroids, self.vectors, self.ids = cent, vectors[order], order.astype(np.int64)
        self.n_probe, self.max_scan = n_probe, 20_000

    @staticmethod
    def _assign(data: np.ndarray, cent: np.ndarray) -> np.ndarray:
        out = np.empty(data.shape[0], dtype=np.int32)
        for s in range(0, data.shape[0], 65_536):
            out[s : s + 65_536] = np.argmax(data[s : s + 65_536] @ cent.T, axis=1)
        return out

    def search(self, q: np.ndarray, k: int, allowed: np.ndarray | None) -> np.ndarray:
        c = self.centroids @ q
        lists = np.argsort(-c)[: self.n_probe]
        sizes = self.offsets[lists + 1] - self.offsets[lists]
        within = np.cumsum(sizes) <= self.max_scan
        within[0] = True
        lists = lists[within]
        cand = np.concatenate([np.arange(self.offsets[j], self.offsets[j + 1]) for j in lists])
        scores = self.vectors[cand] @ q
        ids = self.ids[cand]
        if allowed is not None:
            keep = allowed[ids]
            ids, scores = ids[keep], scores[keep]
        top = np.argsort(-scores)[:k]
        return ids[top]


# --------------------------------------------------------------------------- candidates
def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_candidate(
    name: str, x: np.ndarray, folder: Path
) -> tuple[Search, float, float, int, float]:
    """(search function, build s, RSS MB added, disk bytes, open s)."""
    import faiss

    gc.collect()
    m0 = rss_mb()
    t0 = time.perf_counter()
    disk, t_open = 0, float("nan")
    search: Search
    if name == "numpy":
        t_build = 0.0

        def search(q: np.ndarray, k: int, allowed: np.ndarray | None) -> np.ndarray:
            return exact_top(x, q, k, allowed)[0]

        disk = x.nbytes
    elif name == "old-ivf":
        old = OldIVF(x)
        t_build = time.perf_counter() - t0
        search = old.search
        disk = old.vectors.nbytes + old.ids.nbytes
    elif name in ("faiss-ivf-pq4fs", "faiss-ivf-sq8"):
        if name == "faiss-ivf-pq4fs":
            VectorIndex.build(x, validate=False).save(folder)
        else:
            nlist = default_lists(len(x))
            sq = faiss.IndexIVFScalarQuantizer(
                faiss.IndexFlatIP(x.shape[1]), x.shape[1], nlist,
                faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT,
            )  # fmt: skip
            sq.cp.spherical = True
            sq.cp.niter = 12
            rng = np.random.default_rng(0)
            sq.train(x[np.sort(rng.choice(len(x), min(len(x), train_size(nlist)), False))])
            sq.add(x)
            VectorIndex(x, sq).save(folder)
        t_build = time.perf_counter() - t0
        disk = dir_bytes(folder)
        t = time.perf_counter()
        vi = load_index(folder)
        t_open = time.perf_counter() - t

        def search(q: np.ndarray, k: int, allowed: np.ndarray | None) -> np.ndarray:
            return vi.search(q, k, allowed)[0]

    elif name.startswith("faiss"):
        d = x.shape[1]
        fx: Any
        if name == "faiss-flat":
            fx = faiss.IndexFlatIP(d)
            fx.add(x)
        else:
            nlist = default_lists(len(x))  # the same lists and probes as ours
            quant = faiss.IndexFlatIP(d)
            fx = faiss.IndexIVFFlat(quant, d, nlist, faiss.METRIC_INNER_PRODUCT)
            fx.cp.spherical = True
            rng = np.random.default_rng(0)
            fx.train(x[rng.choice(len(x), min(len(x), train_size(nlist)), replace=False)])
            fx.add(x)
            fx.nprobe = default_nprobe(nlist)
        t_build = time.perf_counter() - t0
        faiss.write_index(fx, str(folder / "i.faiss"))
        disk = dir_bytes(folder)
        fx = None
        gc.collect()
        t = time.perf_counter()
        flag = faiss.IO_FLAG_MMAP_IFC if name == "faiss-flat" else faiss.IO_FLAG_MMAP
        fx = faiss.read_index(str(folder / "i.faiss"), flag)
        t_open = time.perf_counter() - t
        n = len(x)

        def search(q: np.ndarray, k: int, allowed: np.ndarray | None) -> np.ndarray:
            params: Any = faiss.SearchParametersIVF() if name != "faiss-flat" else None
            if params is not None:
                params.nprobe = fx.nprobe
            if allowed is not None:
                bits = np.packbits(allowed, bitorder="little")
                sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
                if params is None:
                    params = faiss.SearchParameters()
                else:
                    params.nprobe = min(fx.nlist, int(fx.nprobe * n / max(1, allowed.sum())))
                params.sel = sel
            _, ids = fx.search(q[None, :], k, params=params)
            return ids[0][ids[0] >= 0]

    elif name == "hnswlib":
        import hnswlib

        hx = hnswlib.Index(space="ip", dim=x.shape[1])
        hx.init_index(max_elements=len(x), ef_construction=100, M=16)
        hx.add_items(x, np.arange(len(x)), num_threads=2)
        t_build = time.perf_counter() - t0
        hx.save_index(str(folder / "h.bin"))
        disk = dir_bytes(folder)
        t = time.perf_counter()
        hy = hnswlib.Index(space="ip", dim=x.shape[1])
        hy.load_index(str(folder / "h.bin"))
        t_open = time.perf_counter() - t
        del hx

        def search(q: np.ndarray, k: int, allowed: np.ndarray | None) -> np.ndarray:
            hy.set_ef(max(64, int(k * 1.5)))
            flt = (lambda i: bool(allowed[i])) if allowed is not None else None
            labels, _ = hy.knn_query(q, k=k, num_threads=1, filter=flt)
            return labels[0].astype(np.int64)

    elif name == "usearch":
        from usearch.index import Index

        ux: Any = Index(ndim=x.shape[1], metric="ip", dtype="f32", connectivity=16)
        ux.add(np.arange(len(x)), x, threads=2)
        t_build = time.perf_counter() - t0
        ux.save(str(folder / "u.usearch"))
        disk = dir_bytes(folder)
        ux = None
        t = time.perf_counter()
        uy: Any = Index.restore(str(folder / "u.usearch"), view=True)
        t_open = time.perf_counter() - t

        def search(q: np.ndarray, k: int, allowed: np.ndarray | None) -> np.ndarray:
            if allowed is None:
                return np.asarray(uy.search(q, k, threads=1).keys, dtype=np.int64)
            # no filter in the Python API: oversample by the filtered-out share, then filter
            over = int(k * len(allowed) / max(1, allowed.sum()) * 2)
            keys = np.asarray(uy.search(q, over, threads=1).keys, dtype=np.int64)
            return keys[allowed[keys]][:k]

    else:
        raise ValueError(f"unknown index {name!r}")
    gc.collect()
    return search, t_build, rss_mb() - m0, disk, t_open


def measure(
    search: Search, x: np.ndarray, qs: np.ndarray, allowed: np.ndarray | None
) -> dict[str, float]:
    lat: list[float] = []
    rec: dict[int, list[float]] = {10: [], 64: [], 100: []}
    with one_thread():
        for q in qs:
            t = time.perf_counter()
            search(q, 10, allowed)
            lat.append(time.perf_counter() - t)
        for q in qs[: min(len(qs), 100)]:
            for k in (10, 64, 100) if allowed is None else (10,):
                truth = set(exact_top(x, q, k, allowed)[0].tolist())
                got = set(search(q, k, allowed).tolist())
                rec[k].append(len(truth & got) / max(1, len(truth)))
    ms = np.asarray(lat) * 1000
    return {
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        **{f"r{k}": float(np.mean(v)) if v else float("nan") for k, v in rec.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repo", type=Path, action="append", default=None,
                        help="git repository whose commit messages join the base texts")  # fmt: skip
    parser.add_argument(
        "--libs",
        nargs="+",
        default=[
            "numpy",
            "old-ivf",
            "faiss-flat",
            "faiss-ivf",
            "faiss-ivf-pq4fs",
            "faiss-ivf-sq8",
            "hnswlib",
            "usearch",
        ],
    )
    parser.add_argument("--graph-max-rows", type=int, default=200_000,
                        help="skip hnswlib and usearch above this size (their builds take "
                        "minutes to an hour at 1M rows on two cores)")  # fmt: skip
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    base = base_set(args.repo or [Path(".")])
    print(f"base: {len(base.texts)} real texts embedded ({len(base.stored)} stored, "
          f"{len(base.held_out)} held out as queries); load {os.getloadavg()[0]:.2f}")  # fmt: skip
    head = (
        "| rows | index | build s | +RSS MB | disk MB | open ms | p50 ms | p95 ms | recall@10 "
        "| recall@64 | recall@100 | filtered p50 | filtered p95 | filtered recall@10 |"
    )
    lines = [head, "|" + "---|" * 14]
    print(head, flush=True)
    for si, n in enumerate(args.sizes):
        x = grow(base, n, seed=si)
        repo = repositories(n, seed=si)
        allowed = repo == 7  # about 3% of rows
        qs = queries_for(base, si, args.queries)
        for name in args.libs:
            if name in ("hnswlib", "usearch") and n > args.graph_max_rows:
                print(f"| {n:,} | {name} | skipped: above --graph-max-rows |", flush=True)
                continue
            folder = Path(tempfile.mkdtemp(prefix=f"bench-vectors-{name}-"))
            try:
                search, t_build, mem, disk, t_open = build_candidate(name, x, folder)
                plain = measure(search, x, qs, None)
                filt = measure(search, x, qs[:100], allowed)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            line = (
                f"| {n:,} | {name} | {t_build:.1f} | {mem:.0f} | {disk / 1e6:.0f} "
                f"| {t_open * 1000:.1f} | {plain['p50']:.2f} | {plain['p95']:.2f} "
                f"| {plain['r10']:.3f} | {plain['r64']:.3f} | {plain['r100']:.3f} "
                f"| {filt['p50']:.2f} | {filt['p95']:.2f} | {filt['r10']:.3f} |"
            )
            lines.append(line)
            print(line, flush=True)
            del search
            gc.collect()
        del x
    print(f"\nload average {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} cores; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB")  # fmt: skip
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
