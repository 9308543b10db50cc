"""The one vector index behind semantic search and the recommender (faiss).

Why faiss: ``benchmarks/bench_vectors.py`` ran faiss, usearch, hnswlib and the
two hand-written IVF indexes this module replaces side by side on the same real
MiniLM vectors (figures in ``docs/search.md``). faiss was the only candidate with
all of: filtered search in C++ (a bitmap of allowed rows, so a repository filter
costs no Python per row), an index file that opens memory-mapped in well under a
millisecond, appends without a rebuild, and build times of seconds rather than
minutes at 1M rows on two cores.

Layout of a saved index folder:

* ``vectors.npy``: the float32 unit rows in row-id order, memory-mapped on load.
  Every returned similarity is computed from these rows (exact cosine), and they
  serve the exact search used for small sets, selective filters and tests.
* ``ann.faiss`` (above ``APPROXIMATE_ABOVE`` rows): an inverted-file index whose
  lists hold 4-bit product-quantized codes scanned with SIMD lookup tables
  (``IndexIVFPQFastScan``, inner product, one sub-quantizer per two dimensions): a
  query probes the ``nprobe`` nearest of ``4 sqrt(n)`` k-means lists, takes the
  best ``rerank`` times ``k`` candidates by their quantized scores and re-ranks
  them exactly with ``vectors.npy``. The codes are an eighth of the 8-bit codes
  used before (``ivf-sq8``, still read): 96 MB at 1M rows, read into memory on
  open (about 70 ms), where the 8-bit codes were memory-mapped. Measured side by
  side on 1M real-text commits (``bench_search``): at the same lists and probes the
  fast-scan codes cost a third of the CPU (1.1 against 3.6 ms per query) for
  recall@10 0.992 and recall@100 0.986 after the re-rank (8-bit: 0.992 / 0.990).
* ``index.json``: format, kind (``exact``, ``ivf-pq4fs``, ``ivf-sq8``), rows,
  dimension, lists, nprobe.

Every query runs one faiss/OpenMP thread and one BLAS thread (``one_thread``):
a query is small, and on a shared machine worker threads waiting for cores
stretched tail latency several-fold.

Folders written by the previous version (``kind`` ``exact`` or ``ivf`` with
``centroids``/``ids``/``offsets`` arrays) still load: the rows are recovered in
row-id order and served by exact search until the next publish rewrites them.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from symbiotic_assets.core.publish import map_array

FORMAT = 2
APPROXIMATE_ABOVE = 20_000
"""Below this many rows exact search costs under a millisecond: no ANN is built."""
EXACT_BELOW_ALLOWED = 20_000
"""A filter allowing fewer rows than this is answered exactly over the allowed rows."""
TRAIN_SIZE = 65_536
MIN_RERANK = 256
"""Candidates re-ranked exactly at the least (4-bit codes order close neighbours coarsely)."""
PQ_TRAIN_ROWS = 8_192
FILTER_PROBES_AT_MOST = 4
"""A filter multiplies the lists probed by the share of rows it removes, up to this factor.

At 1M rows and one repository of 4-6% allowed, 100 held-out real queries: 4 times the
probes kept recall@10 at 1.000 in 5 ms; probing every list took 14-15 ms for the same.
"""
_META = "index.json"
_VECTORS = "vectors.npy"
_ANN = "ann.faiss"
_TRAINED = "trained.faiss"  # the lists without rows, reused by the next streamed build


def _faiss() -> Any:
    import faiss

    return faiss


_limits: Any = None  # threadpoolctl limiter while queries run single-threaded


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One OpenMP thread for faiss and one BLAS thread for numpy during queries.

    The limit is set once and kept (entering and leaving threadpoolctl's limit per
    query cost up to 7 ms at p95 by itself, measured at 100k rows); a build
    (``all_threads``) lifts it and the next query sets it again.
    """
    global _limits
    if _limits is None:
        from threadpoolctl import threadpool_limits

        _faiss().omp_set_num_threads(1)
        _limits = threadpool_limits(limits=1, user_api="blas")
    yield


def one_query_thread() -> None:
    """Limit faiss to one OpenMP thread on the calling thread (a query worker's initializer).

    OpenMP keeps the thread count per thread, so a worker thread that searches
    must set it for itself; the process-wide BLAS limit comes from ``one_thread``.
    """
    _faiss().omp_set_num_threads(1)


@contextlib.contextmanager
def all_threads() -> Iterator[None]:
    """Every core for a build (k-means, filing rows), whatever queries set before."""
    global _limits
    if _limits is not None:
        _limits.restore_original_limits()
        _limits = None
    _faiss().omp_set_num_threads(os.cpu_count() or 1)
    yield


def vector_array(vectors: np.ndarray) -> Any:
    """An (n, dim) float32 matrix as an Arrow fixed-size list column (DuckDB ``FLOAT[dim]``).

    One buffer for all rows: vectors go into DuckDB without a Python list per row.
    """
    import pyarrow as pa

    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"vectors: expected an (n, dim) matrix, got shape {v.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])


def vectors_of(column: Any, dim: int) -> np.ndarray:
    """An Arrow ``FLOAT[dim]`` column (array or chunked) as an (n, dim) float32 matrix."""
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [np.asarray(c.flatten().to_numpy(zero_copy_only=False), np.float32) for c in chunks]
    flat = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return flat.reshape(-1, dim)


def unit_rows(vectors: np.ndarray, name: str = "vectors") -> np.ndarray:
    """``vectors`` as a contiguous float32 (n, dim) matrix; raises unless every row is unit."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"{name}: expected an (n, dim) matrix, got shape {v.shape}")
    if v.shape[0]:
        norms = np.linalg.norm(v, axis=1)
        if not np.all(np.abs(norms - 1.0) < 1e-3):
            bad = int(np.argmax(np.abs(norms - 1.0)))
            raise ValueError(f"{name}[{bad}]: norm {norms[bad]:.4f}; the index needs unit rows")
    return v


def top_of(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best (ids, scores), best first, ties by smaller id (deterministic)."""
    if k <= 0 or len(ids) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    if len(ids) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        ids, scores = ids[part], scores[part]
    order = np.lexsort((ids, -scores))
    return ids[order].astype(np.int64), scores[order].astype(np.float32)


def exact_top(
    vectors: np.ndarray, query: np.ndarray, k: int, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosine top-``k`` over unit rows, restricted to the ``allowed`` mask if given.

    The reference every approximate answer is measured against, and the path for
    small sets and selective filters.
    """
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    if allowed is not None:
        idx = np.flatnonzero(allowed)
        if len(idx) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if len(idx) * 2 > len(allowed):  # most rows allowed: scoring all beats gathering them
            return top_of(idx, (np.asarray(vectors) @ q)[idx], k)
        return top_of(idx, np.asarray(vectors[idx]) @ q, k)
    scores = np.asarray(vectors) @ q
    return top_of(np.arange(len(scores)), scores, k)


def default_lists(n: int) -> int:
    """``4 sqrt(n)`` lists (16 to 4096): small lists, so a probe scans few rows.

    Measured on real MiniLM vectors (``bench_vectors``, 100k rows): 1,264 lists
    probed 64 at a time reached recall@10 0.993 in 0.37 ms; ``sqrt(n)`` lists
    needed a fifth of all lists for 0.983 (0.63 ms).
    """
    return int(min(4096, max(16, 4 * np.sqrt(max(n, 1)))))


def default_nprobe(n_lists: int) -> int:
    """Lists a query probes: ``max(64, lists / 16)``.

    Measured on 1M commits of real commit texts and their perturbed MiniLM vectors
    (4,000 lists, 200 held-out queries, same run, CPU per top-100 query with the
    re-rank): fast-scan codes with 250 probes recall@10 0.992 / recall@100 0.986 in
    1.1 ms; 125 probes 0.987 / 0.972 in 0.7 ms; 64 probes 0.969 / 0.955 in 0.5 ms.
    """
    return min(n_lists, max(64, n_lists // 16))


def train_size(n_lists: int) -> int:
    """Rows to train ``n_lists`` centroids on: 48 per list (faiss asks for at least 39)."""
    return max(TRAIN_SIZE, 48 * n_lists)


class VectorIndex:
    """Cosine top-k over unit rows whose ids are row numbers; exact, or IVF + exact re-rank."""

    def __init__(
        self, vectors: np.ndarray, ann: Any = None, nprobe: int | None = None, rerank: int = 4
    ) -> None:
        self.vectors = vectors
        self.ann = ann
        self.n_lists = int(ann.nlist) if ann is not None else 0
        self.nprobe = nprobe or (default_nprobe(self.n_lists) if ann is not None else 0)
        self.rerank = rerank

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def kind(self) -> str:
        return ann_kind(self.ann) if self.ann is not None else "exact"

    # -- build ------------------------------------------------------------------
    @staticmethod
    def train(sample: np.ndarray, n_lists: int, seed: int = 0) -> Any:
        """An empty IVF index whose lists (spherical k-means) and codes are trained on ``sample``.

        4-bit fast-scan product quantization with two dimensions per code (any even
        dimension); an odd dimension falls back to 8-bit scalar codes. The lists are
        trained with every core (large matrix products); the codes on at most
        ``PQ_TRAIN_ROWS`` rows with one thread: their k-means runs are tiny, and with
        OpenMP threads on a busy machine they took 13 times as long (26 s against 2 s).
        """
        faiss = _faiss()
        data = np.ascontiguousarray(sample, dtype=np.float32)
        d = data.shape[1]
        n_lists = max(1, min(n_lists, data.shape[0] // 4))
        quantizer = faiss.IndexFlatIP(d)
        clustering = faiss.Clustering(d, n_lists)
        clustering.spherical = True
        clustering.seed = seed
        clustering.niter = 12
        clustering.max_points_per_centroid = 48
        with all_threads():
            clustering.train(data, quantizer)  # the quantizer now holds the lists' centres
        if kind_for(d) == "ivf-pq4fs":
            ann = faiss.IndexIVFPQFastScan(
                quantizer, d, n_lists, d // 2, 4, faiss.METRIC_INNER_PRODUCT
            )
            ann.by_residual = True  # codes of the offset from the list's centre: finer
            ann.pq.cp.seed = seed
            codes_sample = data[:: max(1, len(data) // PQ_TRAIN_ROWS)][:PQ_TRAIN_ROWS]
            one_query_thread()
            ann.train(np.ascontiguousarray(codes_sample))
        else:
            ann = faiss.IndexIVFScalarQuantizer(
                quantizer, d, n_lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
            ann.train(data)
        return ann

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        approximate_above: int = APPROXIMATE_ABOVE,
        n_lists: int | None = None,
        nprobe: int | None = None,
        seed: int = 0,
        validate: bool = True,
    ) -> VectorIndex:
        """Exact up to ``approximate_above`` rows, IVF (trained on a sample) above."""
        data = unit_rows(vectors) if validate else np.ascontiguousarray(vectors, np.float32)
        n = data.shape[0]
        if n <= approximate_above:
            return cls(data)
        rng = np.random.default_rng(seed)
        n_lists = n_lists or default_lists(n)
        size = train_size(n_lists)
        sample = data if n <= size else data[np.sort(rng.choice(n, size, False))]
        ann = cls.train(sample, n_lists, seed)
        with all_threads():
            for s in range(0, n, 100_000):
                ann.add(data[s : s + 100_000])
        return cls(data, ann, nprobe)

    # -- search -----------------------------------------------------------------
    def search(
        self,
        query: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        exact: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row ids and exact cosine similarities of (about) the ``k`` best rows, best first.

        ``allowed`` (bool per row) restricts the answer to those rows; it is applied
        inside faiss, and the lists probed grow by the share of rows it removes, at
        most ``FILTER_PROBES_AT_MOST`` times.
        """
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise ValueError(f"query: {q.shape[0]} dimensions, index holds {self.dim}")
        if len(self) == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        n_allowed = len(self) if allowed is None else int(np.count_nonzero(allowed))
        with one_thread():
            if self.ann is None or exact or n_allowed < EXACT_BELOW_ALLOWED:
                return exact_top(self.vectors, q, k, allowed)
            return self._ann_search(q, k, allowed, n_allowed)

    def probes_for(self, n_allowed: int) -> int:
        """Lists probed when ``n_allowed`` rows pass the filter (see ``FILTER_PROBES_AT_MOST``)."""
        grow = min(FILTER_PROBES_AT_MOST, len(self) / max(n_allowed, 1))
        return min(self.n_lists, int(np.ceil(self.nprobe * max(grow, 1.0))))

    def _ann_search(
        self, q: np.ndarray, k: int, allowed: np.ndarray | None, n_allowed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()
        depth = max(k * self.rerank, k + 32, MIN_RERANK)
        nprobe = self.nprobe
        params = faiss.SearchParametersIVF()
        if allowed is not None:
            nprobe = self.probes_for(n_allowed)
            bits = np.packbits(np.asarray(allowed, dtype=bool), bitorder="little")
            selector = faiss.IDSelectorBitmap(len(self), faiss.swig_ptr(bits))
            params.sel = selector
        params.nprobe = nprobe
        _, ids = self.ann.search(q[None, :], depth, params=params)
        cand = ids[0][ids[0] >= 0]
        if len(cand) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        cand.sort()  # ascending rows read the memory-mapped file in order
        scores = np.asarray(self.vectors[cand]) @ q
        return top_of(cand, scores, k)

    # -- files ------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``vectors.npy`` (+ ``ann.faiss``) and ``index.json``, each via a temp name."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{_VECTORS}.tmp{os.getpid()}"
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(self.vectors, dtype=np.float32))
        os.replace(tmp, folder / _VECTORS)
        if self.ann is not None:
            _write_ann(self.ann, folder)
        _write_meta(folder, self._meta())
        return folder

    def _meta(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "kind": self.kind,
            "rows": len(self),
            "dim": self.dim,
            "lists": self.n_lists,
            "nprobe": self.nprobe,
        }


def kind_for(dim: int) -> str:
    """The ANN kind ``VectorIndex.train`` builds for vectors of ``dim`` dimensions."""
    return "ivf-pq4fs" if dim % 2 == 0 else "ivf-sq8"


def ann_kind(ann: Any) -> str:
    """``ivf-pq4fs`` (4-bit fast-scan product codes) or ``ivf-sq8`` (8-bit scalar codes)."""
    return "ivf-pq4fs" if isinstance(ann, _faiss().IndexIVFPQFastScan) else "ivf-sq8"


def _write_ann(ann: Any, folder: Path) -> None:
    tmp = folder / f".{_ANN}.tmp{os.getpid()}"
    _faiss().write_index(ann, str(tmp))
    os.replace(tmp, folder / _ANN)


def _write_meta(folder: Path, meta: dict[str, object]) -> None:
    tmp = folder / f".{_META}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    os.replace(tmp, folder / _META)


def write_streamed(
    folder: str | Path,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    rows: int,
    dim: int,
    approximate_above: int = APPROXIMATE_ABOVE,
    n_lists: int | None = None,
    seed: int = 0,
    trained: Path | None = None,
) -> dict[str, object]:
    """Write an index folder from ``(row ids, rows)`` chunks without holding all rows in memory.

    Each chunk is written at its rows' places in ``vectors.npy`` (plain positional
    writes, so the chunks may come in any order, e.g. DuckDB's storage order); every
    row id in ``range(rows)`` must come exactly once. The ANN is then trained on a
    sample read back from the file and filled chunk by chunk, so memory stays at one
    chunk plus the 8-bit codes (a quarter of the rows). ``trained`` names the
    ``trained.faiss`` of a previous version: when its list count still suits the
    row count (within a factor of two) the lists are reused instead of trained
    again, which is most of the build time. Returns ``index.json``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / _VECTORS
    tmp = folder / f".{_VECTORS}.tmp{os.getpid()}"
    seen = np.zeros(rows, dtype=bool)
    with open(tmp, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)}
        )
        offset = fh.tell()
        fh.truncate(offset + rows * dim * 4)
        fd = fh.fileno()
        for ids, chunk in chunks:
            ids = np.asarray(ids, dtype=np.int64)
            block = unit_rows(chunk, f"vectors[rows {ids[:1].tolist()}...]")
            if block.shape[0] != len(ids) or (len(ids) and block.shape[1] != dim):
                raise ValueError(
                    f"write_streamed: chunk of {len(ids)} ids with rows of shape {block.shape}, "
                    f"expected ({len(ids)}, {dim})"
                )
            if len(ids) and (ids.min() < 0 or ids.max() >= rows or seen[ids].any()):
                raise ValueError(f"write_streamed: row ids out of range or repeated near {ids[:3]}")
            seen[ids] = True
            order = np.argsort(ids, kind="stable")
            ids, block = ids[order], block[order]
            breaks = np.flatnonzero(np.diff(ids) != 1) + 1
            for run_ids, run in zip(np.split(ids, breaks), np.split(block, breaks), strict=True):
                if len(run_ids):
                    os.pwrite(fd, run.tobytes(), offset + int(run_ids[0]) * dim * 4)
    if not seen.all():
        tmp.unlink()
        raise ValueError(
            f"write_streamed: {int((~seen).sum())} of {rows} rows never arrived "
            f"(first: row {int(np.flatnonzero(~seen)[0])})"
        )
    os.replace(tmp, path)
    meta: dict[str, object] = {"format": FORMAT, "kind": "exact", "rows": rows, "dim": dim}
    if rows > approximate_above:
        faiss = _faiss()
        n_lists = n_lists or default_lists(rows)
        ann = None
        if trained is not None and trained.is_file():
            ann = faiss.read_index(str(trained))
            if (
                ann.d != dim
                or not n_lists / 2 <= ann.nlist <= n_lists * 2
                or ann_kind(ann) != kind_for(dim)
            ):
                ann = None  # other lists, or the codes of a previous version
        if ann is None:
            rng = np.random.default_rng(seed)
            pick = np.sort(rng.choice(rows, min(rows, train_size(n_lists)), replace=False))
            ann = VectorIndex.train(_read_rows(path, offset, pick, dim), n_lists, seed)
        faiss.write_index(ann, str(folder / _TRAINED))
        step = 16_384  # rows per add: 24 MB at 384 dimensions
        with open(path, "rb") as fh:
            fh.seek(offset)
            for s in range(0, rows, step):
                m = min(step, rows - s)
                block = np.frombuffer(fh.read(m * dim * 4), dtype=np.float32).reshape(m, dim)
                with all_threads():
                    ann.add(block)
        _write_ann(ann, folder)
        meta.update(kind=ann_kind(ann), lists=int(ann.nlist), nprobe=default_nprobe(int(ann.nlist)))
    _write_meta(folder, meta)
    return meta


def _read_rows(path: Path, offset: int, rows: np.ndarray, dim: int) -> np.ndarray:
    """Rows ``rows`` of a float32 ``.npy`` matrix, by plain reads at their places.

    Not through a memory map: every page a map touches stays resident in the
    process (a training sample of 65k rows touches most pages of the file, 1.5 GB at
    1M rows) for as long as the map lives, which counted as the publish's memory.
    """
    size = dim * 4
    out = np.empty((len(rows), dim), dtype=np.float32)
    with open(path, "rb") as fh:
        fd = fh.fileno()
        for i, r in enumerate(rows.tolist()):
            out[i] = np.frombuffer(os.pread(fd, size, offset + r * size), dtype=np.float32)
    return out


def load_index(folder: str | Path, mmap: bool = True) -> VectorIndex:
    """Open what ``save``/``write_streamed`` wrote (memory-mapped), or a previous-format folder."""
    folder = Path(folder)
    meta_file = folder / _META
    if not meta_file.is_file():
        raise FileNotFoundError(f"{folder}: no {_META}; not a saved vector index")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    mode: Literal["r"] | None = "r" if mmap else None
    kind = meta.get("kind")
    if meta.get("format") == FORMAT:
        vectors = map_array(folder / _VECTORS) if mmap else np.load(folder / _VECTORS)
        if kind == "exact":
            return VectorIndex(vectors)
        if kind in ("ivf-pq4fs", "ivf-sq8"):
            faiss = _faiss()
            flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
            ann = faiss.read_index(str(folder / _ANN), flags)
            return VectorIndex(vectors, ann, int(meta.get("nprobe") or 0) or None)
        raise ValueError(f"{meta_file}: unknown index kind {kind!r}")
    # previous format (no "format" key): exact .npy, or IVF rows grouped by list with ids
    if kind == "exact":
        return VectorIndex(np.load(folder / "vectors.npy", mmap_mode=mode))
    if kind == "ivf":
        grouped = np.load(folder / "vectors.npy", mmap_mode="r")
        ids = np.load(folder / "ids.npy")
        rows = np.empty(grouped.shape, dtype=np.float32)
        rows[ids] = grouped
        return VectorIndex(rows)
    raise ValueError(f"{meta_file}: unknown index kind {kind!r} (format {meta.get('format')!r})")


def recall_at_k(
    approx: VectorIndex,
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int = 10,
    allowed: np.ndarray | None = None,
) -> float:
    """Mean share of the exact top-``k`` over ``vectors`` that ``approx`` also returns."""
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    hits = 0
    total = 0
    for q in queries:
        truth = set(exact_top(vectors, q, k, allowed)[0].tolist())
        got = set(approx.search(q, k, allowed)[0].tolist())
        hits += len(truth & got)
        total += len(truth)
    return hits / max(total, 1)
