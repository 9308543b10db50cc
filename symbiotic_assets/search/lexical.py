"""BM25 over commit texts, stored as one sparse matrix so that a query is a column sum.

Each cell holds the BM25 term-frequency part for (document, term),
``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))``; multiplying the
columns of the query's terms by their idf and summing gives the classic Okapi
BM25 score (Robertson-Sparck Jones idf with the +1 that keeps it positive). The
matrix is kept in CSC form because a query touches a handful of columns.

Top-k does not sum every posting: each term's postings are also stored in
impact order (largest weight first, ``impact_docs``/``impact_weights``). ``top``
scores the heads of those lists exactly (binary search in the doc-ordered
columns) to get a threshold, the k-th best score so far; the terms whose
maximum contributions sum below it cannot put a document that has none of the
other terms into the top k (MaxScore), so only the other terms' postings are
read in full. Common words in a query (long lists, low idf) are the ones
skipped. The scores are the same numbers the exhaustive sum gives (tests
compare them).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from symbiotic_assets.core.publish import map_array

DEFAULT_K1 = 1.2
DEFAULT_B = 0.75
SUM_ALL_BELOW = 100_000
# a posting list shorter than this many times the documents looked up in it is read
# whole into a dense per-document buffer instead of binary-searched once per document
DENSE_LOOKUP_FACTOR = 32


@dataclass
class BM25Index:
    """Term weights (docs x terms, CSC), idf per term, and the vocabulary."""

    weights: sp.csc_matrix
    idf: np.ndarray
    vocabulary: dict[str, int]
    k1: float = DEFAULT_K1
    b: float = DEFAULT_B
    impact_docs: np.ndarray | None = None  # per column, doc ids by weight, largest first
    impact_weights: np.ndarray | None = None  # the matching weights (without idf)

    def __post_init__(self) -> None:
        if self.impact_docs is None or self.impact_weights is None:
            self.impact_docs, self.impact_weights = impact_order(self.weights)
        self._scratch = threading.local()

    def _dense(self) -> tuple[np.ndarray, np.ndarray]:
        """This thread's (scores float64, seen bool) buffers, one cell per document, all zero.

        Every user leaves them zero again by resetting only the cells it wrote.
        """
        buffers = getattr(self._scratch, "buffers", None)
        if buffers is None or len(buffers[0]) != self.n_docs:
            buffers = (np.zeros(self.n_docs, dtype=np.float64), np.zeros(self.n_docs, dtype=bool))
            self._scratch.buffers = buffers
        return buffers

    @property
    def n_docs(self) -> int:
        return int(self.weights.shape[0])

    @classmethod
    def build(
        cls, documents: Sequence[Sequence[str]], k1: float = DEFAULT_K1, b: float = DEFAULT_B
    ) -> BM25Index:
        """Index tokenized documents (one list of terms per document, in index order)."""
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 parameters k1={k1}, b={b}: need k1 >= 0 and 0 <= b <= 1")
        vocabulary: dict[str, int] = {}
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        tfs: list[np.ndarray] = []
        lengths = np.zeros(len(documents), dtype=np.float64)
        for i, doc in enumerate(documents):
            lengths[i] = len(doc)
            if not doc:
                continue
            ids = np.fromiter(
                (vocabulary.setdefault(t, len(vocabulary)) for t in doc),
                dtype=np.int64,
                count=len(doc),
            )
            uniq, counts = np.unique(ids, return_counts=True)
            rows.append(np.full(len(uniq), i, dtype=np.int64))
            cols.append(uniq)
            tfs.append(counts.astype(np.float64))
        n = len(documents)
        v = len(vocabulary)
        if rows:
            r = np.concatenate(rows)
            c = np.concatenate(cols)
            tf = np.concatenate(tfs)
        else:
            r = c = np.zeros(0, dtype=np.int64)
            tf = np.zeros(0)
        avg = float(lengths.mean()) if n and lengths.sum() > 0 else 1.0
        norm = k1 * (1.0 - b + b * lengths[r] / avg)
        w = tf * (k1 + 1.0) / (tf + norm)
        weights = sp.csc_matrix((w.astype(np.float32), (r, c)), shape=(n, v))
        df = np.diff(weights.indptr).astype(np.float64)
        idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
        weights.sort_indices()
        return cls(weights=weights, idf=idf, vocabulary=vocabulary, k1=k1, b=b)

    def term_ids(self, terms: Sequence[str]) -> list[int]:
        """Known terms' column ids, each once, in query order."""
        seen: dict[int, None] = {}
        for t in terms:
            j = self.vocabulary.get(t)
            if j is not None:
                seen.setdefault(j, None)
        return list(seen)

    def score(self, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(document ids with a non-zero score, their BM25 scores); unsorted."""
        return self._score_postings(self.term_ids(terms))

    def _score_postings(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        indptr, indices, data = self.weights.indptr, self.weights.indices, self.weights.data
        rows = [indices[indptr[j] : indptr[j + 1]] for j in ids]
        vals = [data[indptr[j] : indptr[j + 1]] * self.idf[j] for j in ids]
        if len(ids) == 1:
            return rows[0].astype(np.int64), vals[0].astype(np.float32)
        all_rows = np.concatenate(rows)
        all_vals = np.concatenate(vals)
        if len(all_rows) * 16 < self.n_docs:  # few postings: sort them rather than touch every doc
            docs, inverse = np.unique(all_rows, return_inverse=True)
            return docs.astype(np.int64), np.bincount(inverse, weights=all_vals).astype(np.float32)
        summed = np.bincount(all_rows, weights=all_vals, minlength=self.n_docs)
        docs = np.flatnonzero(summed)
        return docs.astype(np.int64), summed[docs].astype(np.float32)

    def dense_scores(self, terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every document (zeros where no term matches)."""
        out = np.zeros(self.n_docs, dtype=np.float32)
        docs, scores = self.score(terms)
        out[docs] = scores
        return out

    def score_docs(
        self, doc_ids: np.ndarray, terms: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """BM25 of the given documents and which query terms each holds, by binary search.

        Returns (scores float32 (len(doc_ids),), matched bool (len(doc_ids), len(terms))).
        Costs ``len(doc_ids) * log(postings)`` per term instead of a pass over the postings.
        """
        return self._score_columns(doc_ids, [self.vocabulary.get(t) for t in terms])

    def _score_columns(
        self, doc_ids: np.ndarray, cols: Sequence[int | None]
    ) -> tuple[np.ndarray, np.ndarray]:
        doc_ids = np.asarray(doc_ids, dtype=np.int64)
        scores = np.zeros(len(doc_ids), dtype=np.float64)
        matched = np.zeros((len(doc_ids), len(cols)), dtype=bool)
        if len(doc_ids) == 0:
            return scores.astype(np.float32), matched
        indptr, indices, data = self.weights.indptr, self.weights.indices, self.weights.data
        seen: set[int] = set()
        for j, col in enumerate(cols):
            if col is None:
                continue
            start, end = int(indptr[col]), int(indptr[col + 1])
            if end == start:
                continue
            rows = indices[start:end]  # sorted
            weights = data[start:end] * self.idf[col]
            if end - start <= DENSE_LOOKUP_FACTOR * len(doc_ids):
                # scatter the list into the dense buffer, gather the documents, clear it:
                # sequential writes instead of one binary search per document
                dense = self._dense()[0]
                dense[rows] = weights
                found_weights = dense[doc_ids]
                dense[rows] = 0.0
                found = found_weights > 0.0
                matched[:, j] = found
                if col not in seen:  # a repeated query term counts once, as in ``score``
                    seen.add(col)
                    scores[found] += found_weights[found]
                continue
            where = np.minimum(np.searchsorted(rows, doc_ids), len(rows) - 1)
            found = rows[where] == doc_ids
            matched[:, j] = found
            if col not in seen:
                seen.add(col)
                scores[found] += weights[where[found]]
        return scores.astype(np.float32), matched

    def _sum_essential(self, cols: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(documents holding any of ``cols``, ascending; the sum of their weights, float64).

        Adds each list into the dense buffer and marks its documents, then reads the
        marked cells: work in proportion to the postings plus one pass over a byte
        per document, no sort.
        """
        dense, marks = self._dense()
        indptr, indices, data = self.weights.indptr, self.weights.indices, self.weights.data
        for col in cols:
            start, end = int(indptr[col]), int(indptr[col + 1])
            rows = indices[start:end]
            dense[rows] += data[start:end] * self.idf[col]  # a list holds each document once
            marks[rows] = True
        docs = np.flatnonzero(marks)
        sums = dense[docs]
        dense[docs] = 0.0
        marks[docs] = False
        return docs.astype(np.int64), sums

    def top(
        self, terms: Sequence[str], n: int, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Best ``n`` documents (ids, scores), best first (ties: smaller id); ``mask`` filters.

        Reads only the heads of the terms' impact-ordered postings (see the module
        docstring); falls back to the exhaustive sum when the lists are short.
        """
        if n <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        ids = self.term_ids(terms)
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        indptr = self.weights.indptr
        lengths = [int(indptr[j + 1] - indptr[j]) for j in ids]
        depth = max(4 * n, 256)
        # short lists: summing them all is cheaper (measured: below ~100k postings the sum wins)
        if sum(lengths) <= max(2 * depth * len(ids), SUM_ALL_BELOW):
            return self.top_exhaustive(terms, n, mask)
        assert self.impact_docs is not None and self.impact_weights is not None
        theta = self._head_threshold(ids, lengths, depth, n, mask)
        # the bound is the threshold loosened a little, so float32 rounding never drops a
        # document the exact sum would keep
        bound = theta * (1 - 1e-5) - 1e-6
        # 2. MaxScore: terms whose maxima sum below the threshold cannot lift a document
        #    that has none of the other terms into the top n; read only the others in full
        best = [float(self.impact_weights[indptr[j]]) * float(self.idf[j]) for j in ids]
        order = sorted(range(len(ids)), key=lambda i: best[i])
        total, cut = 0.0, 0
        for i in order:
            if total + best[i] >= bound:
                break
            total += best[i]
            cut += 1
        essential = [ids[i] for i in order[cut:]]
        # 3. sum the essential terms' postings; then add the other terms one at a time,
        #    largest maximum first, dropping every document whose score so far plus the
        #    maxima still to come cannot reach the threshold.
        #    A document holding none of the essential terms scores at most ``total``,
        #    below the threshold, so the survivors hold the whole top n.
        docs, upper = self._sum_essential(essential)
        if mask is not None and len(docs):
            keep = mask[docs]
            docs, upper = docs[keep], upper[keep]
        if len(docs) > 2 * n:
            # a better threshold: the n-th best exact score among the 2n documents with
            # the most essential weight (the heads' threshold is often well below it)
            theta = max(theta, self._nth_exact(docs, upper, ids, n))
            bound = theta * (1 - 1e-5) - 1e-6
        remaining = total
        for i in reversed(order[:cut]):
            alive = upper + remaining >= bound
            docs, upper = docs[alive], upper[alive]
            if len(docs) == 0:
                break
            upper = upper + self._score_columns(docs, [ids[i]])[0]
            remaining -= best[i]
        docs = docs[upper + max(remaining, 0.0) >= bound]
        # the survivors are scored exactly over all terms, in query order, so the
        # scores equal the exhaustive sum's to the bit
        scores, _ = self._score_columns(docs, ids)
        keep = scores > 0
        return _best(docs[keep], scores[keep], n)

    def _head_threshold(
        self,
        ids: Sequence[int],
        lengths: Sequence[int],
        depth: int,
        n: int,
        mask: np.ndarray | None,
    ) -> float:
        """A score that at least ``n`` (allowed) documents reach: a lower bound of the n-th best.

        The heads of the impact-ordered lists give each document they hold a partial
        score (the sum of the weights seen there), without any search in the long
        lists; the ``2 n`` best by that partial score are then scored exactly, and
        the n-th best of those exact scores is the threshold.
        """
        assert self.impact_docs is not None and self.impact_weights is not None
        indptr = self.weights.indptr
        head_docs, head_weights = [], []
        for j, m in zip(ids, lengths, strict=True):
            lo, hi = int(indptr[j]), int(indptr[j]) + min(depth, m)
            head_docs.append(self.impact_docs[lo:hi])
            head_weights.append(self.impact_weights[lo:hi] * np.float32(self.idf[j]))
        docs = np.concatenate(head_docs).astype(np.int64)
        weights = np.concatenate(head_weights)
        if mask is not None:
            keep = mask[docs]
            docs, weights = docs[keep], weights[keep]
        if len(docs) == 0:
            return 0.0
        order = np.argsort(docs, kind="stable")
        docs, weights = docs[order], weights[order]
        first = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
        unique, partial = docs[first], np.add.reduceat(weights, first)
        if len(unique) < n:
            return 0.0
        return self._nth_exact(unique, partial, ids, n)

    def _nth_exact(
        self, docs: np.ndarray, partial: np.ndarray, ids: Sequence[int], n: int
    ) -> float:
        """The n-th best exact score among the ``2 n`` of ``docs`` with the best ``partial``.

        At least n documents score that much, so it is a valid threshold; ``docs``
        must hold at least n documents.
        """
        pick = min(len(docs), 2 * n)
        chosen = np.sort(docs[np.argpartition(-partial, pick - 1)[:pick]])
        exact, _ = self._score_columns(chosen, ids)
        return float(-np.partition(-exact, n - 1)[n - 1])

    def top_exhaustive(
        self, terms: Sequence[str], n: int, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``top`` by summing every posting of the terms (the reference ``top`` must equal)."""
        if n <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        docs, scores = self.score(terms)
        if mask is not None and len(docs):
            keep = mask[docs]
            docs, scores = docs[keep], scores[keep]
        return _best(docs, scores, n)

    def matched_terms(self, doc_ids: np.ndarray, terms: Sequence[str]) -> np.ndarray:
        """Boolean (len(doc_ids), len(terms)): which query terms each document contains."""
        return self.score_docs(np.asarray(doc_ids), terms)[1]

    # -- files ----------------------------------------------------------------
    def save(self, folder: Path, prefix: str = "bm25") -> None:
        """Plain ``.npy`` arrays (opened memory-mapped by ``load``) and the vocabulary as JSON."""
        arrays = {
            "indptr": self.weights.indptr,
            "indices": self.weights.indices,
            "data": self.weights.data,
            "impact_docs": self.impact_docs,
            "impact_weights": self.impact_weights,
            "idf": self.idf,
        }
        for name, arr in arrays.items():
            np.save(folder / f"{prefix}_{name}.npy", arr)
        terms = [""] * len(self.vocabulary)
        for t, j in self.vocabulary.items():
            terms[j] = t
        meta = {"k1": self.k1, "b": self.b, "terms": terms, "shape": list(self.weights.shape)}
        (folder / f"{prefix}_vocabulary.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, prefix: str = "bm25") -> BM25Index:
        """Open what ``save`` wrote, memory-mapped; a previous ``.npz`` layout still loads."""
        idf = np.load(folder / f"{prefix}_idf.npy")
        meta = json.loads((folder / f"{prefix}_vocabulary.json").read_text(encoding="utf-8"))
        vocabulary = {t: j for j, t in enumerate(meta["terms"])}
        impact: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        if (folder / f"{prefix}_indptr.npy").is_file():

            def arr(name: str) -> np.ndarray:
                return map_array(folder / f"{prefix}_{name}.npy")

            weights = sp.csc_matrix(
                (arr("data"), arr("indices"), arr("indptr")),
                shape=tuple(meta["shape"]),
                copy=False,
            )
            weights.has_sorted_indices = True  # written sorted; checking would read them all
            impact = (arr("impact_docs"), arr("impact_weights"))
        else:  # previous layout: one .npz, impact order computed here
            weights = sp.load_npz(folder / f"{prefix}_weights.npz").tocsc()
            weights.sort_indices()
        return cls(
            weights=weights,
            idf=idf,
            vocabulary=vocabulary,
            k1=meta["k1"],
            b=meta["b"],
            impact_docs=impact[0],
            impact_weights=impact[1],
        )


def impact_order(weights: sp.csc_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Each column's postings by weight, largest first (ties by doc id), as flat arrays."""
    cols = np.repeat(np.arange(weights.shape[1], dtype=np.int64), np.diff(weights.indptr))
    order = np.lexsort((weights.indices, -weights.data, cols))
    return (
        np.ascontiguousarray(weights.indices[order], dtype=np.int32),
        np.ascontiguousarray(weights.data[order], dtype=np.float32),
    )


def _best(docs: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best (docs, scores), best first, ties by smaller doc id.

    Only the documents scoring at least the n-th best score are sorted (all of
    those tied with it included, so the tie-break is the same as sorting all).
    """
    if len(docs) > 4 * n:
        nth = np.partition(scores, len(scores) - n)[len(scores) - n]
        keep = scores >= nth
        docs, scores = docs[keep], scores[keep]
    order = np.lexsort((docs, -scores))[:n]
    return docs[order].astype(np.int64), scores[order].astype(np.float32)
