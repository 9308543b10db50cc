"""Serving vector index for cosine top-k over unit-norm float32 rows.

``ExactIndex`` is one matrix-vector product: exact and fast enough up to a few
hundred thousand rows. Past that the product reads the whole matrix per query
(1.5 GB at 1M x 384 float32), so ``IVFIndex`` partitions the rows with
spherical k-means and scans only the ``n_probe`` lists whose centroids are
closest to the query; rows are stored grouped by list, so each probe is one
contiguous slice. Recall against exact search is measured by
``benchmarks/bench_recommend.py`` (``recall_at_k``).

Both save to plain ``.npy`` files plus a small JSON header, each written to a
temporary name and moved into place with ``os.replace``, and load with
memory-mapping, so a publish step can write them atomically and readers start
without copying.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

_META = "index.json"


def _as_unit_rows(vectors: np.ndarray, name: str = "vectors") -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty (n, dim) matrix, got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1)
    if not np.all(np.abs(norms - 1.0) < 1e-3):
        bad = int(np.argmax(np.abs(norms - 1.0)))
        raise ValueError(f"{name}[{bad}]: norm {norms[bad]:.4f}; the index needs unit-norm rows")
    return np.ascontiguousarray(v)


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, scores.shape[0])
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = (
        np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(scores.shape[0])
    )
    return part[np.argsort(-scores[part], kind="stable")]


def _save_array(folder: Path, name: str, array: np.ndarray) -> None:
    tmp = folder / f".{name}.tmp{os.getpid()}.npy"
    np.save(tmp, array)
    os.replace(tmp, folder / f"{name}.npy")


def _write_meta(folder: Path, meta: dict[str, object]) -> None:
    tmp = folder / f".{_META}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    os.replace(tmp, folder / _META)


class ExactIndex:
    """Exact cosine top-k by one matrix-vector product."""

    kind = "exact"

    def __init__(self, vectors: np.ndarray, validate: bool = True) -> None:
        self.vectors = _as_unit_rows(vectors) if validate else vectors

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row ids and cosine similarities of the ``k`` most similar rows, best first."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.vectors.shape[1]:
            raise ValueError(f"query: {q.shape[0]} dimensions, index holds {self.vectors.shape[1]}")
        scores = self.vectors @ q
        top = _top_k(scores, k)
        return top.astype(np.int64), scores[top]

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _save_array(folder, "vectors", self.vectors)
        _write_meta(
            folder, {"kind": self.kind, "rows": len(self), "dim": int(self.vectors.shape[1])}
        )
        return folder


def _spherical_kmeans(
    data: np.ndarray, n_lists: int, iters: int, rng: np.random.Generator
) -> np.ndarray:
    centroids = data[rng.choice(data.shape[0], size=n_lists, replace=False)].copy()
    for _ in range(iters):
        assign = _assign(data, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, data)
        counts = np.bincount(assign, minlength=n_lists)
        empty = np.flatnonzero(counts == 0)
        if empty.size:  # re-seed empty lists on random rows so no list is wasted
            sums[empty] = data[rng.choice(data.shape[0], size=empty.size, replace=False)]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
    return centroids


def _assign(data: np.ndarray, centroids: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    out = np.empty(data.shape[0], dtype=np.int32)
    for s in range(0, data.shape[0], chunk):
        out[s : s + chunk] = np.argmax(data[s : s + chunk] @ centroids.T, axis=1)
    return out


class IVFIndex:
    """Inverted-file index: k-means lists, probe the nearest ``n_probe``, rank exactly within.

    At most ``max_scan`` rows are scored per query (the nearest list always is).
    The scan is most of a query's time at 1M rows, so the defaults (12 lists,
    20,000 rows) are the smallest that kept recall@10 vs exact at 0.998-1.000 on
    the 1M benchmark (16 / 40,000 scored up to twice the rows for no recall gain).

    ``ids[j]`` is the original row id of stored row ``j``; rows of list ``l`` are
    ``offsets[l]:offsets[l + 1]``.
    """

    kind = "ivf"

    def __init__(
        self,
        centroids: np.ndarray,
        vectors: np.ndarray,
        ids: np.ndarray,
        offsets: np.ndarray,
        n_probe: int = 12,
        max_scan: int = 20_000,
    ) -> None:
        if offsets.shape[0] != centroids.shape[0] + 1 or int(offsets[-1]) != vectors.shape[0]:
            raise ValueError(
                f"ivf index: {centroids.shape[0]} lists need {centroids.shape[0] + 1} offsets ending "
                f"at {vectors.shape[0]}; got {offsets.shape[0]} ending at {int(offsets[-1])}"
            )
        if ids.shape[0] != vectors.shape[0]:
            raise ValueError(f"ivf index: {ids.shape[0]} ids for {vectors.shape[0]} rows")
        if n_probe < 1:
            raise ValueError(f"n_probe={n_probe}: must be >= 1")
        self.centroids = centroids
        self.vectors = vectors
        self.ids = ids
        self.offsets = offsets
        self.n_probe = n_probe
        self.max_scan = max_scan

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        n_lists: int | None = None,
        n_probe: int = 12,
        max_scan: int = 20_000,
        train_size: int = 65_536,
        iters: int = 12,
        seed: int = 0,
    ) -> IVFIndex:
        """Train lists on a sample (``sqrt(n)`` lists by default), then file every row."""
        data = _as_unit_rows(vectors)
        n = data.shape[0]
        n_lists = int(min(n_lists or max(1, int(np.sqrt(n))), n))
        if n_lists < 1:
            raise ValueError(f"n_lists={n_lists}: must be >= 1")
        rng = np.random.default_rng(seed)
        sample = data if n <= train_size else data[rng.choice(n, size=train_size, replace=False)]
        centroids = _spherical_kmeans(sample, min(n_lists, sample.shape[0]), iters, rng)
        assign = _assign(data, centroids)
        order = np.argsort(assign, kind="stable")
        counts = np.bincount(assign, minlength=centroids.shape[0])
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(centroids, data[order], order.astype(np.int64), offsets, n_probe, max_scan)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k: original row ids and exact cosine similarities, best first."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.vectors.shape[1]:
            raise ValueError(f"query: {q.shape[0]} dimensions, index holds {self.vectors.shape[1]}")
        lists = _top_k(self.centroids @ q, self.n_probe)
        # a row budget bounds the tail latency when a query lands in the biggest lists
        sizes = self.offsets[lists + 1] - self.offsets[lists]
        within = np.cumsum(sizes) <= self.max_scan
        within[0] = True
        lists = lists[within]
        # each list is a contiguous slice: score it in place instead of gathering rows
        starts = self.offsets[lists]
        ends = self.offsets[lists + 1]
        parts = [self.vectors[a:b] @ q for a, b in zip(starts, ends, strict=True) if b > a]
        if not parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = np.concatenate(parts)
        cand = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True) if b > a])
        top = _top_k(scores, k)
        return self.ids[cand[top]], scores[top]

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("centroids", "vectors", "ids", "offsets"):
            _save_array(folder, name, getattr(self, name))
        _write_meta(
            folder,
            {
                "kind": self.kind,
                "rows": len(self),
                "dim": int(self.vectors.shape[1]),
                "lists": int(self.centroids.shape[0]),
                "n_probe": self.n_probe,
                "max_scan": self.max_scan,
            },
        )
        return folder


def build_index(
    vectors: np.ndarray, approximate_above: int = 200_000, **ivf_options: int
) -> ExactIndex | IVFIndex:
    """Exact below ``approximate_above`` rows (where it is already fast), IVF above."""
    if np.asarray(vectors).shape[0] <= approximate_above:
        return ExactIndex(vectors)
    return IVFIndex.build(vectors, **ivf_options)


def load_index(folder: str | Path, mmap: bool = True) -> ExactIndex | IVFIndex:
    """Load what ``save`` wrote; ``mmap`` maps the arrays instead of reading them."""
    folder = Path(folder)
    meta_file = folder / _META
    if not meta_file.is_file():
        raise FileNotFoundError(f"{folder}: no {_META}; not a saved vector index")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))

    def arr(name: str) -> np.ndarray:
        path = folder / f"{name}.npy"
        return np.load(path, mmap_mode="r") if mmap else np.load(path)

    if meta.get("kind") == "exact":
        return ExactIndex(arr("vectors"), validate=False)
    if meta.get("kind") == "ivf":
        return IVFIndex(
            arr("centroids"),
            arr("vectors"),
            arr("ids"),
            arr("offsets"),
            int(meta["n_probe"]),
            int(meta.get("max_scan", 40_000)),
        )
    raise ValueError(f"{meta_file}: unknown index kind {meta.get('kind')!r}")


def recall_at_k(
    approx: ExactIndex | IVFIndex, exact: ExactIndex, queries: np.ndarray, k: int = 10
) -> float:
    """Mean share of the exact top-k that the approximate index also returns."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    hits = 0
    for q in queries:
        truth = set(exact.search(q, k)[0].tolist())
        got = set(approx.search(q, k)[0].tolist())
        hits += len(truth & got)
    return hits / (k * queries.shape[0])
