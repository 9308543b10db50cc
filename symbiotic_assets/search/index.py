"""The serving index: vectors, BM25, commit metadata and ranker weights in one folder.

Readers never open the warehouse. ``publish`` writes a complete new version
folder under ``<root>/versions/`` (files first, the folder renamed into place
when complete), then replaces the small pointer file ``<root>/CURRENT`` with
``os.replace``, which is atomic: a reader sees the old version or the new one,
never a half-written one. Older versions are kept for a while (``KEEP_VERSIONS``)
so that a reader that read the pointer just before a swap still finds its files.

Large arrays are ``.npy`` files opened memory-mapped, so a CLI process starts in
milliseconds and several readers share the page cache. Above
``ANN_MIN_DOCS`` commits the vectors are stored grouped by an inverted-file
(IVF) partition: k-means centroids on the unit sphere, each commit in the list
of its nearest centroid, lists contiguous on disk; a query scores the centroids
and then only the ``nprobe`` nearest lists.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from symbiotic_assets.core import publish as versioned
from symbiotic_assets.core.publish import KEEP_VERSIONS, publish_version
from symbiotic_assets.search.clicks import ClickBoost, ClickModel
from symbiotic_assets.search.lexical import BM25Index
from symbiotic_assets.search.ranker import (
    FEATURE_INDEX,
    FEATURES,
    RankerWeights,
    rank_feature,
)
from symbiotic_assets.search.text import ParsedQuery, tokenize

FORMAT_VERSION = 1
ANN_MIN_DOCS = 50_000
CANDIDATES = 100


class IndexNotPublishedError(FileNotFoundError):
    """No serving index has been published at the given place yet."""


# --------------------------------------------------------------------------- strings
def pack_strings(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 blob plus offsets: one string per row without a Python object per row on disk."""
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8) if encoded else np.zeros(0, np.uint8)
    return blob, offsets


def unpack_string(blob: np.ndarray, offsets: np.ndarray, i: int) -> str:
    return bytes(blob[offsets[i] : offsets[i + 1]]).decode("utf-8")


# --------------------------------------------------------------------------- IVF
@dataclass
class IVFPartition:
    """Centroids and list boundaries; documents are already stored in list order."""

    centroids: np.ndarray  # (nlist, dim) float32, unit rows
    offsets: np.ndarray  # (nlist + 1,) int64: list j holds docs offsets[j]:offsets[j+1]
    nprobe: int

    @staticmethod
    def train(
        vectors: np.ndarray, nlist: int | None = None, iterations: int = 10, seed: int = 0
    ) -> tuple[IVFPartition, np.ndarray]:
        """Spherical k-means on a sample; returns the partition and the order to store docs in."""
        n = len(vectors)
        nlist = nlist or max(16, int(np.sqrt(n)))
        rng = np.random.default_rng(seed)
        sample_size = min(n, nlist * 48)
        sample = vectors[np.sort(rng.choice(n, sample_size, replace=False))].astype(np.float32)
        centroids = sample[rng.choice(sample_size, nlist, replace=False)].copy()
        for _ in range(iterations):
            assign = _nearest(sample, centroids)
            sums = np.zeros_like(centroids)
            np.add.at(sums, assign, sample)
            counts = np.bincount(assign, minlength=nlist)
            empty = counts == 0
            if empty.any():  # re-seed empty lists with random points
                sums[empty] = sample[rng.choice(sample_size, int(empty.sum()))]
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            centroids = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
        assign = _nearest(vectors, centroids)
        order = np.argsort(assign, kind="stable")
        counts = np.bincount(assign, minlength=nlist)
        offsets = np.zeros(nlist + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return IVFPartition(
            centroids=centroids, offsets=offsets, nprobe=default_nprobe(nlist)
        ), order

    def search(
        self,
        vectors: np.ndarray,
        query: np.ndarray,
        n: int,
        mask: np.ndarray | None = None,
        nprobe: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top ``n`` (ids, cosines), best first, over the ``nprobe`` nearest lists."""
        probe = min(len(self.centroids), nprobe or self.nprobe)
        near = np.argpartition(-(self.centroids @ query), probe - 1)[:probe]
        ids: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        for j in near:
            start, end = int(self.offsets[j]), int(self.offsets[j + 1])
            if end == start:
                continue
            block = np.asarray(vectors[start:end]) @ query
            idx = np.arange(start, end)
            if mask is not None:
                keep = mask[start:end]
                block, idx = block[keep], idx[keep]
            ids.append(idx)
            scores.append(block)
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return _top(np.concatenate(ids), np.concatenate(scores), n)


_blas_controller: Any = None


def single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    """One BLAS thread for a query's matrix-vector products.

    A query's products are small (a few hundred thousand rows at most); on a busy
    machine BLAS worker threads wait for cores and stretched the 1M-commit p95
    from ~30 ms to several hundred (measured under a load average of 6 on 2 cores).
    """
    global _blas_controller
    try:
        if _blas_controller is None:
            from threadpoolctl import ThreadpoolController

            _blas_controller = ThreadpoolController()
        return _blas_controller.limit(limits=1, user_api="blas")  # type: ignore[no-any-return]
    except ImportError:  # pragma: no cover - threadpoolctl comes with scipy's stack
        return contextlib.nullcontext()


def default_nprobe(nlist: int) -> int:
    """Lists a query scans: ``max(24, nlist / 40)``.

    Chosen by measured recall (``benchmarks/bench_search.py``, 1M commits, 1000 lists,
    200 queries): ANN recall@10 against exact search is 1.000 from 20 probed lists
    up, 0.999 at 10-15; 25 keeps that margin at a third of the former ``lists / 12``.
    """
    return min(nlist, max(24, nlist // 40))


def _nearest(vectors: np.ndarray, centroids: np.ndarray, chunk: int = 32_768) -> np.ndarray:
    out = np.empty(len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        block = np.asarray(vectors[start : start + chunk], dtype=np.float32)
        out[start : start + len(block)] = np.argmax(block @ centroids.T, axis=1)
    return out


def _top(ids: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    if len(ids) > n:
        part = np.argpartition(-scores, n - 1)[:n]
        ids, scores = ids[part], scores[part]
    order = np.lexsort((ids, -scores))
    return ids[order].astype(np.int64), scores[order].astype(np.float32)


def exact_top(
    vectors: np.ndarray, query: np.ndarray, n: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``n`` by cosine (vectors are unit rows), restricted to ``mask`` if given."""
    if mask is not None:
        idx = np.flatnonzero(mask)
        if len(idx) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if len(idx) * 2 > len(mask):  # most rows allowed: scoring all beats copying them out
            return _top(idx, (np.asarray(vectors) @ query)[idx], n)
        return _top(idx, np.asarray(vectors[idx]) @ query, n)
    scores = np.asarray(vectors) @ query
    return _top(np.arange(len(scores)), scores, n)


# --------------------------------------------------------------------------- corpus
@dataclass
class CommitCorpus:
    """Commits to index, one row each, with their text and unit vector."""

    hashes: list[str]
    repositories: list[str]
    authors: list[str]
    authored_at: np.ndarray  # int64 seconds since the epoch, UTC
    is_merge: np.ndarray  # bool
    subjects: list[str]
    texts: list[str]
    paths: list[list[str]]
    vectors: np.ndarray  # (n, dim) float32 unit rows

    def __post_init__(self) -> None:
        n = len(self.hashes)
        sizes = {
            "repositories": len(self.repositories),
            "authors": len(self.authors),
            "authored_at": len(self.authored_at),
            "is_merge": len(self.is_merge),
            "subjects": len(self.subjects),
            "texts": len(self.texts),
            "paths": len(self.paths),
            "vectors": len(self.vectors),
        }
        bad = {k: v for k, v in sizes.items() if v != n}
        if bad:
            raise ValueError(f"CommitCorpus: {n} hashes but column lengths {bad}")


@dataclass
class Hit:
    """One search result with the features that put it there."""

    doc: int
    score: float
    features: dict[str, float]
    matched_terms: list[str]
    click: ClickBoost | None = None  # what the click memory added, if anything


@dataclass
class Candidates:
    """Candidate documents of one query and their feature matrix (rows follow ``docs``)."""

    docs: np.ndarray
    features: np.ndarray
    matched: np.ndarray  # bool (len(docs), len(terms))
    terms: list[str]


@dataclass
class SearchIndex:
    """Everything a query needs, loaded from one published version (or built in memory)."""

    vectors: np.ndarray
    bm25: BM25Index
    subject_terms: sp.csc_matrix  # binary docs x terms (same vocabulary as bm25)
    hashes: np.ndarray  # S40, doc order
    hash_sorted: np.ndarray  # S40 sorted
    hash_sorted_docs: np.ndarray  # doc id of each sorted hash
    repository_names: list[str]
    repository_codes: np.ndarray
    author_names: list[str]
    author_codes: np.ndarray
    authored_at: np.ndarray
    is_merge: np.ndarray
    subject_blob: np.ndarray
    subject_offsets: np.ndarray
    path_names: list[str]
    doc_path_indptr: np.ndarray
    doc_path_indices: np.ndarray
    ivf: IVFPartition | None
    weights: RankerWeights
    model_id: str
    version: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    clicks: ClickModel | None = None  # click memory (per similar-query boosts)

    @property
    def size(self) -> int:
        return int(len(self.hashes))

    # -- build ------------------------------------------------------------
    @classmethod
    def build(
        cls,
        corpus: CommitCorpus,
        model_id: str,
        weights: RankerWeights | None = None,
        ann_min_docs: int = ANN_MIN_DOCS,
        tokens: Sequence[Sequence[str]] | None = None,
        clicks: ClickModel | None = None,
    ) -> SearchIndex:
        """Index a corpus; above ``ann_min_docs`` documents the IVF order is applied first."""
        n = len(corpus.hashes)
        vectors = np.ascontiguousarray(corpus.vectors, dtype=np.float32)
        if n and vectors.shape[1] < 1:
            raise ValueError("CommitCorpus.vectors: empty vectors")
        ivf: IVFPartition | None = None
        order = np.arange(n)
        if n >= ann_min_docs:
            ivf, order = IVFPartition.train(vectors)
            vectors = vectors[order]
        pick = order.tolist()
        doc_tokens = [tokens[i] for i in pick] if tokens is not None else None
        texts = [corpus.texts[i] for i in pick]
        subjects = [corpus.subjects[i] for i in pick]
        if doc_tokens is None:
            doc_tokens = [tokenize(t) for t in texts]
        bm25 = BM25Index.build(doc_tokens)
        subject_terms = _term_matrix([tokenize(s) for s in subjects], bm25.vocabulary)
        hashes = np.array([corpus.hashes[i] for i in pick], dtype="S40")
        hash_order = np.argsort(hashes, kind="stable")
        repo_names, repo_codes = _codes([corpus.repositories[i] for i in pick])
        author_names, author_codes = _codes([corpus.authors[i] for i in pick])
        path_names, indptr, indices = _path_lists([corpus.paths[i] for i in pick])
        blob, offsets = pack_strings(subjects)
        return cls(
            vectors=vectors,
            bm25=bm25,
            subject_terms=subject_terms,
            hashes=hashes,
            hash_sorted=hashes[hash_order],
            hash_sorted_docs=hash_order.astype(np.int64),
            repository_names=repo_names,
            repository_codes=repo_codes,
            author_names=author_names,
            author_codes=author_codes,
            authored_at=np.asarray(corpus.authored_at, dtype=np.int64)[order],
            is_merge=np.asarray(corpus.is_merge, dtype=bool)[order],
            subject_blob=blob,
            subject_offsets=offsets,
            path_names=path_names,
            doc_path_indptr=indptr,
            doc_path_indices=indices,
            ivf=ivf,
            weights=weights or RankerWeights(),
            model_id=model_id,
            clicks=clicks,
        )

    # -- lookups ----------------------------------------------------------
    def subject(self, doc: int) -> str:
        return unpack_string(self.subject_blob, self.subject_offsets, doc)

    def hash_of(self, doc: int) -> str:
        return bytes(self.hashes[doc]).decode("ascii")

    def doc_paths(self, doc: int) -> list[str]:
        s, e = self.doc_path_indptr[doc], self.doc_path_indptr[doc + 1]
        return [self.path_names[i] for i in self.doc_path_indices[s:e]]

    def docs_with_hash_prefix(self, prefix: str) -> np.ndarray:
        """Documents whose hash starts with ``prefix`` (lower-case hex), by binary search."""
        key = prefix.lower().encode("ascii")
        lo = int(np.searchsorted(self.hash_sorted, key, side="left"))
        hi = lo
        while hi < len(self.hash_sorted) and bytes(self.hash_sorted[hi]).startswith(key):
            hi += 1
        return self.hash_sorted_docs[lo:hi]

    def docs_for_hashes(self, hashes: Sequence[str]) -> list[int | None]:
        """Document id of each full hash, or None when the index does not hold it."""
        out: list[int | None] = []
        for h in hashes:
            docs = self.docs_with_hash_prefix(h)
            out.append(int(docs[0]) if len(docs) == 1 else None)
        return out

    def filter_mask(
        self,
        repositories: Sequence[str] | None = None,
        authors: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        paths: Sequence[str] | None = None,
        include_merges: bool = False,
    ) -> np.ndarray | None:
        """Allowed documents (None = all). Authors match by case-insensitive substring."""
        mask: np.ndarray | None = None

        def both(m: np.ndarray) -> None:
            nonlocal mask
            mask = m if mask is None else (mask & m)

        if not include_merges and self.is_merge.any():
            both(~self.is_merge)
        if repositories:
            wanted = {r for r in repositories}
            codes = [i for i, name in enumerate(self.repository_names) if name in wanted]
            both(np.isin(self.repository_codes, codes))
        if authors:
            needles = [a.lower() for a in authors]
            codes = [
                i
                for i, name in enumerate(self.author_names)
                if any(n in name.lower() for n in needles)
            ]
            both(np.isin(self.author_codes, codes))
        if since is not None:
            both(self.authored_at >= int(_utc(since).timestamp()))
        if until is not None:
            both(self.authored_at < int(_utc(until).timestamp()))
        if paths:
            wanted_paths = [p.strip("/") for p in paths if p.strip("/")]
            path_ids = [
                i
                for i, name in enumerate(self.path_names)
                if any(
                    name == p or name.startswith(p + "/") or name.startswith(p)
                    for p in wanted_paths
                )
            ]
            hit = np.zeros(self.size, dtype=bool)
            if path_ids:
                owner = np.repeat(np.arange(self.size), np.diff(self.doc_path_indptr))
                hit[owner[np.isin(self.doc_path_indices, path_ids)]] = True
            both(hit)
        return mask

    # -- retrieval --------------------------------------------------------
    def semantic_top(
        self, query_vec: np.ndarray, n: int, mask: np.ndarray | None = None, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` by cosine: IVF when the index has one (oversampled under filters), else exact."""
        if self.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self.ivf is None or exact:
            return exact_top(self.vectors, query_vec, n, mask)
        allowed = self.size if mask is None else int(mask.sum())
        if allowed < 20_000:  # a selective filter: scanning the allowed rows is cheaper and exact
            return exact_top(self.vectors, query_vec, n, mask)
        probe = self.ivf.nprobe
        if mask is not None:
            probe = min(len(self.ivf.centroids), int(probe * max(1.0, self.size / max(allowed, 1))))
        return self.ivf.search(self.vectors, query_vec, n, mask, nprobe=probe)

    def candidates(
        self,
        parsed: ParsedQuery,
        query_vec: np.ndarray,
        mask: np.ndarray | None = None,
        n: int = CANDIDATES,
        extra_docs: Sequence[int] = (),
        exact: bool = False,
    ) -> Candidates:
        """Union of semantic top-n, lexical top-n, exact identifier matches and ``extra_docs``."""
        terms = parsed.terms
        sem_docs, _ = self.semantic_top(query_vec, n, mask, exact=exact)
        lex_docs, lex_scores = self.bm25.top(terms, n, mask)
        hash_docs = [self.docs_with_hash_prefix(p) for p in parsed.hex_prefixes]
        pools = [sem_docs, lex_docs, *hash_docs, np.asarray(list(extra_docs), dtype=np.int64)]
        docs = np.unique(np.concatenate([p.astype(np.int64) for p in pools]))
        if mask is not None and len(docs):
            allowed_extra = set(int(d) for d in extra_docs)
            docs = np.array([d for d in docs if mask[d] or int(d) in allowed_extra], dtype=np.int64)
        feats = np.zeros((len(docs), len(FEATURES)), dtype=np.float64)
        if len(docs) == 0:
            return Candidates(docs, feats, np.zeros((0, len(terms)), dtype=bool), terms)
        cos = np.asarray(self.vectors[docs]) @ query_vec
        feats[:, FEATURE_INDEX["semantic"]] = cos
        sem_rank = np.zeros(len(docs))
        pos = {int(d): r + 1 for r, d in enumerate(sem_docs)}
        sem_rank[:] = [pos.get(int(d), 0) for d in docs]
        feats[:, FEATURE_INDEX["semantic_rank"]] = rank_feature(sem_rank)
        lex, matched = self.bm25.score_docs(docs, terms)
        best = float(lex_scores[0]) if len(lex_scores) else 0.0
        if best > 0:
            feats[:, FEATURE_INDEX["lexical"]] = lex / best
        lpos = {int(d): r + 1 for r, d in enumerate(lex_docs)}
        feats[:, FEATURE_INDEX["lexical_rank"]] = rank_feature(
            np.array([lpos.get(int(d), 0) for d in docs])
        )
        if terms:
            ids = [self.bm25.vocabulary.get(t) for t in terms]
            known = [j for j in ids if j is not None]
            if known:
                sub = self.subject_terms[docs][:, known]
                feats[:, FEATURE_INDEX["subject_terms"]] = np.asarray(
                    sub.sum(axis=1)
                ).ravel() / len(terms)
        if parsed.identifiers:
            cols = [terms.index(t) for t in parsed.identifiers if t in terms]
            if cols:
                feats[:, FEATURE_INDEX["identifier"]] = matched[:, cols].sum(axis=1) / len(
                    parsed.identifiers
                )
        if parsed.hex_prefixes:
            hashes = self.hashes[docs]
            feats[:, FEATURE_INDEX["hash_prefix"]] = [
                float(any(bytes(h).startswith(p.encode()) for p in parsed.hex_prefixes))
                for h in hashes
            ]
        if parsed.issue_refs:
            cols = [terms.index(t) for t in parsed.issue_refs if t in terms]
            if cols:
                feats[:, FEATURE_INDEX["issue_ref"]] = matched[:, cols].any(axis=1)
        if parsed.has_identifier:
            feats[:, FEATURE_INDEX["semantic_if_identifier"]] = feats[:, FEATURE_INDEX["semantic"]]
            feats[:, FEATURE_INDEX["lexical_if_identifier"]] = feats[:, FEATURE_INDEX["lexical"]]
        return Candidates(docs, feats, matched, terms)

    def rank(
        self,
        parsed: ParsedQuery,
        query_vec: np.ndarray,
        k: int = 10,
        mask: np.ndarray | None = None,
        weights: RankerWeights | None = None,
        exact: bool = False,
        clicks: ClickModel | None | bool = True,
    ) -> list[Hit]:
        """The ``k`` best documents under ``weights`` (the published ones by default).

        ``clicks``: ``True`` uses the published click memory, ``False`` or ``None`` none,
        or a ``ClickModel`` to use instead. Commits boosted by it join the candidates
        (when the filters allow them); without a similar past query nothing changes.
        """
        with single_threaded_blas():
            return self._rank(parsed, query_vec, k, mask, weights, exact, clicks)

    def _rank(
        self,
        parsed: ParsedQuery,
        query_vec: np.ndarray,
        k: int,
        mask: np.ndarray | None,
        weights: RankerWeights | None,
        exact: bool,
        clicks: ClickModel | None | bool,
    ) -> list[Hit]:
        model = self.clicks if clicks is True else (clicks or None)
        boosts = model.boosts(query_vec) if model is not None else {}
        boost_doc: dict[int, ClickBoost] = {}
        if boosts:
            names = list(boosts)
            for h, d in zip(names, self.docs_for_hashes(names), strict=True):
                if d is not None and (mask is None or mask[d]):
                    boost_doc[int(d)] = boosts[h]
        extra = [d for d, b in boost_doc.items() if b.boost > 0]
        cand = self.candidates(parsed, query_vec, mask, exact=exact, extra_docs=extra)
        if len(cand.docs) == 0:
            return []
        w = (weights or self.weights).vector()
        scores = cand.features @ w
        if boost_doc:
            scores = scores + np.array([boost_doc[int(d)].boost if int(d) in boost_doc else 0.0
                                        for d in cand.docs])  # fmt: skip
        order = np.lexsort((cand.docs, -scores))[:k]
        hits: list[Hit] = []
        for i in order:
            hits.append(
                Hit(
                    doc=int(cand.docs[i]),
                    score=float(scores[i]),
                    features={f: float(cand.features[i, j]) for j, f in enumerate(FEATURES)},
                    matched_terms=[
                        t for t, m in zip(cand.terms, cand.matched[i], strict=True) if m
                    ],
                    click=boost_doc.get(int(cand.docs[i])),
                )
            )
        return hits

    # -- files ------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write every file of this index into ``folder`` (which must be new and empty)."""
        folder.mkdir(parents=True, exist_ok=False)
        np.save(folder / "vectors.npy", np.ascontiguousarray(self.vectors, dtype=np.float32))
        self.bm25.save(folder)
        sp.save_npz(folder / "subject_terms.npz", self.subject_terms, compressed=False)
        arrays = {
            "hashes": self.hashes,
            "hash_sorted": self.hash_sorted,
            "hash_sorted_docs": self.hash_sorted_docs,
            "repository_codes": self.repository_codes,
            "author_codes": self.author_codes,
            "authored_at": self.authored_at,
            "is_merge": self.is_merge,
            "subject_blob": self.subject_blob,
            "subject_offsets": self.subject_offsets,
            "doc_path_indptr": self.doc_path_indptr,
            "doc_path_indices": self.doc_path_indices,
        }
        for name, arr in arrays.items():
            np.save(folder / f"{name}.npy", arr)
        if self.ivf is not None:
            np.save(folder / "ivf_centroids.npy", self.ivf.centroids)
            np.save(folder / "ivf_offsets.npy", self.ivf.offsets)
        (folder / "names.json").write_text(
            json.dumps(
                {
                    "repositories": self.repository_names,
                    "authors": self.author_names,
                    "paths": self.path_names,
                }
            ),
            encoding="utf-8",
        )
        (folder / "ranker.json").write_text(self.weights.to_json(), encoding="utf-8")
        if self.clicks is not None:
            (folder / "clicks.json").write_text(self.clicks.to_json(), encoding="utf-8")
        meta = {
            "format_version": FORMAT_VERSION,
            "model_id": self.model_id,
            "documents": self.size,
            "dimension": int(self.vectors.shape[1]) if self.size else 0,
            "ivf_nprobe": self.ivf.nprobe if self.ivf else None,
            "ivf_lists": len(self.ivf.centroids) if self.ivf else None,
            **self.meta,
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, version: str = "", mmap_vectors: bool = False) -> SearchIndex:
        """Read one version; ``mmap_vectors`` maps the vectors instead of reading them.

        Reading costs ~1.5 GB of RAM per million commits and a second at start-up, and
        keeps query latency flat; mapping starts instantly but the first queries pay a
        page fault per vector page they touch.
        """
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{folder}: index format {meta.get('format_version')!r}, this code reads "
                f"{FORMAT_VERSION}; publish the index again"
            )

        def arr(name: str, mmap: bool = False) -> np.ndarray:
            return np.load(folder / f"{name}.npy", mmap_mode="r" if mmap else None)

        names = json.loads((folder / "names.json").read_text(encoding="utf-8"))
        ivf = None
        if (folder / "ivf_centroids.npy").is_file():
            ivf = IVFPartition(
                centroids=arr("ivf_centroids"),
                offsets=arr("ivf_offsets"),
                nprobe=default_nprobe(len(arr("ivf_centroids"))),  # the rule, not the meta
            )
        return cls(
            vectors=arr("vectors", mmap=mmap_vectors),
            bm25=BM25Index.load(folder),
            subject_terms=sp.load_npz(folder / "subject_terms.npz").tocsr(),
            hashes=arr("hashes"),
            hash_sorted=arr("hash_sorted"),
            hash_sorted_docs=arr("hash_sorted_docs"),
            repository_names=list(names["repositories"]),
            repository_codes=arr("repository_codes"),
            author_names=list(names["authors"]),
            author_codes=arr("author_codes"),
            authored_at=arr("authored_at"),
            is_merge=arr("is_merge"),
            subject_blob=arr("subject_blob", mmap=True),
            subject_offsets=arr("subject_offsets"),
            path_names=list(names["paths"]),
            doc_path_indptr=arr("doc_path_indptr"),
            doc_path_indices=arr("doc_path_indices"),
            ivf=ivf,
            weights=RankerWeights.from_json((folder / "ranker.json").read_text(encoding="utf-8")),
            model_id=str(meta["model_id"]),
            version=version,
            meta=meta,
            clicks=ClickModel.from_json((folder / "clicks.json").read_text(encoding="utf-8"))
            if (folder / "clicks.json").is_file()
            else None,
        )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _codes(values: Sequence[str]) -> tuple[list[str], np.ndarray]:
    names: dict[str, int] = {}
    codes = np.fromiter(
        (names.setdefault(v, len(names)) for v in values), dtype=np.int32, count=len(values)
    )
    return list(names), codes


def _path_lists(paths: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    names: dict[str, int] = {}
    indptr = np.zeros(len(paths) + 1, dtype=np.int64)
    indices: list[int] = []
    for i, doc_paths in enumerate(paths):
        for p in doc_paths:
            indices.append(names.setdefault(p, len(names)))
        indptr[i + 1] = len(indices)
    return list(names), indptr, np.asarray(indices, dtype=np.int32)


def _term_matrix(docs: Sequence[Sequence[str]], vocabulary: dict[str, int]) -> sp.csr_matrix:
    rows: list[int] = []
    cols: list[int] = []
    for i, doc in enumerate(docs):
        for j in {vocabulary[t] for t in doc if t in vocabulary}:
            rows.append(i)
            cols.append(j)
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(docs), len(vocabulary)))


# --------------------------------------------------------------------------- publishing
def publish(
    index: SearchIndex, root: Path, keep: int = KEEP_VERSIONS, min_age_seconds: float = 300.0
) -> str:
    """Write ``index`` as a new version under ``root`` and switch the pointer to it atomically.

    Versions beyond the ``keep`` newest are deleted once older than ``min_age_seconds``,
    so that a reader that read the pointer a moment ago still finds its files.
    """

    def write(folder: Path, version: str) -> None:
        index.meta = {
            **index.meta,
            "version": version,
            "published_at": datetime.now(UTC).isoformat(),
        }
        index.save(folder)

    version = publish_version(root, write, keep=keep, min_age_seconds=min_age_seconds)
    index.version = version
    return version


def current_version(root: Path) -> str:
    """The published version the pointer names; raises if nothing was published."""
    return versioned.current_version(
        root,
        what="search index",
        hint="materialize the search/serving_index asset (symbiotic run) first",
        error=IndexNotPublishedError,
    )


def load_published(root: Path) -> SearchIndex:
    """Load the version the pointer names (again, if it was swapped and pruned meanwhile)."""
    for attempt in range(3):
        version = current_version(root)
        try:
            return SearchIndex.load(root / "versions" / version, version=version)
        except FileNotFoundError:
            if attempt == 2 or current_version(root) == version:
                raise
    raise AssertionError("unreachable")
