"""BM25 files written from documents that arrive in batches, in bounded memory.

``BM25Index.build`` holds every posting of the corpus at once (as Python lists,
then a COO and a CSC matrix, then the impact order): at a million commits that is
several gigabytes. ``BM25Writer`` produces the same files ``BM25Index.save``
writes (same names, dtypes and bytes) without that:

1. ``add`` maps each document's terms to ids (first occurrence order, as
   ``build`` does) into a compact ``int32`` buffer; every ``run_postings``
   tokens the buffer is sorted by (term, document) with numpy and written as a
   *run*: three flat files (term, document, term frequency) on disk. Memory is
   one buffer plus, per run, its distinct terms and where each starts.
2. ``finish`` knows the document lengths (hence the average), the document
   frequencies and so the column pointers. It writes the columns in ranges of
   terms holding at most ``chunk_postings`` postings: each run's slice for the
   range is read back with plain file reads (not a memory map, whose pages would
   count as the process's memory), the slices are put in term order by a stable
   sort (runs come in document order, so each column stays sorted by document),
   the BM25 weights computed with the same float64 arithmetic as ``build`` and
   appended to the ``.npy`` files, and the range's impact order (weight
   descending, then document) appended to the impact files.

Only the vocabulary and a few ``float64``/``int64`` values per document and per
term stay in memory; a test compares every file with ``BM25Index.build`` +
``save`` on a real corpus.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from symbiotic_assets.search.lexical import DEFAULT_B, DEFAULT_K1

RUN_POSTINGS = 2_000_000
"""Tokens buffered before a run is sorted and written (about 100 MB of sort memory)."""
CHUNK_POSTINGS = 1_000_000
"""Postings per range of columns written by ``finish`` (about 60 MB of arrays)."""

_INT32_MAX = int(np.iinfo(np.int32).max)


def index_dtype(*sizes: int) -> np.dtype:
    """The index dtype scipy gives a sparse matrix of these sizes (int32 while they fit)."""
    return np.dtype(np.int32) if max((0, *sizes)) <= _INT32_MAX else np.dtype(np.int64)


class NpyAppender:
    """A one-dimensional ``.npy`` file written in pieces, byte for byte what ``np.save`` writes.

    numpy pads a one-dimensional header to a fixed length whatever the length of
    the array, so the header is written first with a placeholder length and
    rewritten in place at ``close`` (checked: a different length raises).
    """

    def __init__(self, path: Path, dtype: np.dtype | type | str) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.count = 0
        self._fh: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._header = self._header_bytes(0)
        self._fh.write(self._header)

    def _header_bytes(self, n: int) -> bytes:
        import io

        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buf,
            {
                "descr": np.lib.format.dtype_to_descr(self.dtype),
                "fortran_order": False,
                "shape": (n,),
            },
        )
        return buf.getvalue()

    def append(self, values: np.ndarray) -> None:
        block = np.ascontiguousarray(values, dtype=self.dtype)
        self._fh.write(block.tobytes())
        self.count += len(block)

    def close(self) -> None:
        header = self._header_bytes(self.count)
        if len(header) != len(self._header):
            raise AssertionError(f"{self.path}: .npy header changed length at {self.count} rows")
        self._fh.seek(0)
        self._fh.write(header)
        self._fh.close()


@dataclass
class _Run:
    """One sorted run on disk: its distinct terms and where each term's postings start."""

    path: Path
    terms: np.ndarray  # int32, ascending
    starts: np.ndarray  # int64, len(terms) + 1: postings of terms[i] are starts[i]:starts[i+1]

    def read(self, lo_term: int, hi_term: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(terms, docs, tfs) of the terms in ``[lo_term, hi_term)``, by plain file reads."""
        i0, i1 = np.searchsorted(self.terms, [lo_term, hi_term])
        start, end = int(self.starts[i0]), int(self.starts[i1])
        count = end - start
        terms = np.repeat(self.terms[i0:i1], np.diff(self.starts[i0 : i1 + 1]))
        docs = np.fromfile(self.path.with_suffix(".docs"), np.int32, count, offset=4 * start)
        tfs = np.fromfile(self.path.with_suffix(".tfs"), np.int32, count, offset=4 * start)
        return terms, docs, tfs


class BM25Writer:
    """Build the files of a ``BM25Index`` from documents given in order, batch by batch."""

    def __init__(
        self,
        k1: float = DEFAULT_K1,
        b: float = DEFAULT_B,
        scratch: Path | None = None,
        run_postings: int = RUN_POSTINGS,
        chunk_postings: int = CHUNK_POSTINGS,
    ) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 parameters k1={k1}, b={b}: need k1 >= 0 and 0 <= b <= 1")
        self.k1, self.b = k1, b
        self.vocabulary: dict[str, int] = {}
        self.run_postings = max(1, run_postings)
        self.chunk_postings = max(1, chunk_postings)
        self._scratch = Path(tempfile.mkdtemp(prefix=".bm25-runs-", dir=scratch))
        self._runs: list[_Run] = []
        self._lengths: list[np.ndarray] = []  # float64 per document, one array per run
        self._ids = array("i")  # term ids of the buffered documents, in token order
        self._doc_lengths = array("q")  # tokens per buffered document
        self._run_first_doc = 0
        self.n_docs = 0

    # -- input -----------------------------------------------------------------
    def add(self, documents: Iterable[Sequence[str]]) -> None:
        """Append tokenized documents (one sequence of terms each) in index order."""
        vocabulary = self.vocabulary
        ids, lengths = self._ids, self._doc_lengths
        for doc in documents:
            ids.extend([vocabulary.setdefault(t, len(vocabulary)) for t in doc])
            lengths.append(len(doc))
            self.n_docs += 1
            if len(ids) >= self.run_postings:
                self._flush()
                ids, lengths = self._ids, self._doc_lengths

    def _flush(self) -> None:
        lengths = np.frombuffer(self._doc_lengths, dtype=np.int64).astype(np.float64)
        n = len(lengths)
        if n == 0:
            return
        self._lengths.append(lengths)
        ids = np.frombuffer(self._ids, dtype=np.int32)
        if len(ids):
            local = np.repeat(np.arange(n, dtype=np.int64), lengths.astype(np.int64))
            keys, tfs = np.unique(ids.astype(np.int64) * n + local, return_counts=True)
            terms = (keys // n).astype(np.int32)
            docs = (keys % n + self._run_first_doc).astype(np.int32)
            del keys, local
            first = np.flatnonzero(np.r_[True, terms[1:] != terms[:-1]])
            path = self._scratch / f"run{len(self._runs):05d}"
            docs.tofile(path.with_suffix(".docs"))
            tfs.astype(np.int32).tofile(path.with_suffix(".tfs"))
            starts = np.append(first, len(terms)).astype(np.int64)
            self._runs.append(_Run(path, terms[first].copy(), starts))
        self._run_first_doc += n
        self._ids = array("i")
        self._doc_lengths = array("q")

    # -- output ----------------------------------------------------------------
    def finish(self, folder: Path, prefix: str = "bm25") -> dict[str, int]:
        """Write the index files into ``folder``; returns ``{"documents": n, "terms": v}``."""
        try:
            self._flush()
            return self._write(folder, prefix)
        finally:
            self.close()

    def close(self) -> None:
        """Remove the runs (``finish`` does; call it when giving up before)."""
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _write(self, folder: Path, prefix: str) -> dict[str, int]:
        n, v, k1, b = self.n_docs, len(self.vocabulary), self.k1, self.b
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.float64)
        avg = float(lengths.mean()) if n and lengths.sum() > 0 else 1.0
        df_counts = np.zeros(v, dtype=np.int64)
        for run in self._runs:
            df_counts[run.terms] += np.diff(run.starts)
        nnz = int(df_counts.sum())
        idx = index_dtype(nnz, n, v)
        indptr = np.zeros(v + 1, dtype=np.int64)
        np.cumsum(df_counts, out=indptr[1:])
        np.save(folder / f"{prefix}_indptr.npy", indptr.astype(idx))
        files = {
            "indices": NpyAppender(folder / f"{prefix}_indices.npy", idx),
            "data": NpyAppender(folder / f"{prefix}_data.npy", np.float32),
            "impact_docs": NpyAppender(folder / f"{prefix}_impact_docs.npy", np.int32),
            "impact_weights": NpyAppender(folder / f"{prefix}_impact_weights.npy", np.float32),
        }
        try:
            lo = 0
            while lo < v:
                # the next range of terms: as many as fit in chunk_postings (at least one)
                hi = int(np.searchsorted(indptr, indptr[lo] + self.chunk_postings, side="right"))
                hi = min(v, max(hi - 1, lo + 1))
                parts = [run.read(lo, hi) for run in self._runs]
                terms = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int32)
                docs = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int32)
                tf = np.concatenate([p[2] for p in parts]).astype(np.float64) if parts else None
                del parts
                if tf is not None and len(terms):
                    order = np.argsort(terms, kind="stable")
                    terms, docs, tf = terms[order], docs[order], tf[order]
                    norm = k1 * (1.0 - b + b * lengths[docs] / avg)
                    w = (tf * (k1 + 1.0) / (tf + norm)).astype(np.float32)
                    files["indices"].append(docs)
                    files["data"].append(w)
                    impact = np.lexsort((docs, -w, terms))
                    files["impact_docs"].append(docs[impact])
                    files["impact_weights"].append(w[impact])
                lo = hi
        finally:
            for f in files.values():
                f.close()
        df = df_counts.astype(np.float64)
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        np.save(folder / f"{prefix}_idf.npy", idf)
        meta = {"k1": k1, "b": b, "terms": list(self.vocabulary), "shape": [n, v]}
        (folder / f"{prefix}_vocabulary.json").write_text(json.dumps(meta), encoding="utf-8")
        return {"documents": n, "terms": v}
