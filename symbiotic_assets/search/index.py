"""The serving index: vectors, BM25, commit metadata and ranker weights in one folder.

Readers never open the warehouse. ``publish`` writes a complete new version
folder under ``<root>/versions/`` (files first, the folder renamed into place
when complete), then replaces the small pointer file ``<root>/CURRENT`` with
``os.replace``, which is atomic: a reader sees the old version or the new one,
never a half-written one. Older versions are kept for a while (``KEEP_VERSIONS``)
so that a reader that read the pointer just before a swap still finds its files.

Large arrays are ``.npy`` files opened memory-mapped, so a CLI process starts in
milliseconds and several readers share the page cache. The vectors live in
``vectors/``, a ``core.vectors`` index folder (the same faiss index the
recommender serves): exact search up to ``APPROXIMATE_ABOVE`` commits, an
IVF index over 4-bit fast-scan codes with exact re-ranking above. Version folders of the
previous format (1) still load and are searched exactly until the next publish.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from symbiotic_assets.core import publish as versioned
from symbiotic_assets.core.publish import KEEP_VERSIONS, map_array, publish_version
from symbiotic_assets.core.vectors import (
    APPROXIMATE_ABOVE,
    VectorIndex,
    load_index,
    one_query_thread,
    one_thread,
    write_streamed,
)
from symbiotic_assets.core.vectors import exact_top as exact_top  # re-exported for callers
from symbiotic_assets.search.bm25_stream import (
    RUN_POSTINGS,
    BM25Writer,
    NpyAppender,
    index_dtype,
)
from symbiotic_assets.search.clicks import ClickBoost, ClickModel
from symbiotic_assets.search.lexical import BM25Index
from symbiotic_assets.search.ranker import (
    FEATURE_INDEX,
    FEATURES,
    RankerWeights,
    rank_feature,
)
from symbiotic_assets.search.text import ParsedQuery, tokenize

FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
ANN_MIN_DOCS = APPROXIMATE_ABOVE
CANDIDATES = 100
_SIDE: ThreadPoolExecutor | None = None
_SIDE_LOCK = threading.Lock()


def _side_thread() -> ThreadPoolExecutor:
    """One worker thread per process for the vector half of a query (see ``SearchIndex.rank``).

    The embedding (ONNX Runtime) and faiss release the GIL, so on two cores the
    vector half and the BM25 half of a query overlap instead of adding up.
    """
    global _SIDE
    with _SIDE_LOCK:
        if _SIDE is None:
            _SIDE = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="symbiotic-search", initializer=one_query_thread
            )
        return _SIDE


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
    ann: VectorIndex | None  # over ``vectors``; None = exact search (tiny or legacy index)
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
        """Index a corpus in its order; above ``ann_min_docs`` documents the vectors get an ANN."""
        n = len(corpus.hashes)
        vectors = np.ascontiguousarray(corpus.vectors, dtype=np.float32)
        # zero-width vectors: they are written separately (``publish_streamed``)
        streamed = vectors.ndim == 2 and vectors.shape[1] == 0
        ann = (
            VectorIndex.build(vectors, approximate_above=ann_min_docs)
            if n and not streamed
            else None
        )
        if ann is not None and ann.ann is None:
            ann = None
        doc_tokens = tokens if tokens is not None else [tokenize(t) for t in corpus.texts]
        subjects = corpus.subjects
        bm25 = BM25Index.build(doc_tokens)
        subject_terms = _term_matrix([tokenize(s) for s in subjects], bm25.vocabulary)
        hashes = np.array(corpus.hashes, dtype="S40")
        hash_order = np.argsort(hashes, kind="stable")
        repo_names, repo_codes = _codes(corpus.repositories)
        author_names, author_codes = _codes(corpus.authors)
        path_names, indptr, indices = _path_lists(corpus.paths)
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
            authored_at=np.asarray(corpus.authored_at, dtype=np.int64),
            is_merge=np.asarray(corpus.is_merge, dtype=bool),
            subject_blob=blob,
            subject_offsets=offsets,
            path_names=path_names,
            doc_path_indptr=indptr,
            doc_path_indices=indices,
            ann=ann,
            weights=weights or RankerWeights(),
            model_id=model_id,
            clicks=clicks,
        )

    def ann_description(self) -> str:
        """``exact``, or the ANN kind with its lists and probes (for logs and metadata)."""
        if self.ann is None:
            return "exact"
        return f"{self.ann.kind} {self.ann.n_lists} lists, nprobe {self.ann.nprobe}"

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
        """Top ``n`` by cosine: the ANN when the index has one (filters applied inside), else exact.

        Selective filters (fewer than ``core.vectors.EXACT_BELOW_ALLOWED`` allowed
        commits) are answered exactly over the allowed rows.
        """
        if self.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self.ann is None or exact:
            return exact_top(self.vectors, query_vec, n, mask)
        return self.ann.search(query_vec, n, mask)

    def candidates(
        self,
        parsed: ParsedQuery,
        query_vec: np.ndarray,
        mask: np.ndarray | None = None,
        n: int = CANDIDATES,
        extra_docs: Sequence[int] = (),
        exact: bool = False,
        semantic: tuple[np.ndarray, np.ndarray] | None = None,
        lexical: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> Candidates:
        """Union of semantic top-n, lexical top-n, exact identifier matches and ``extra_docs``.

        ``semantic`` and ``lexical`` take the two top-n lists when the caller already
        has them (``rank`` computes them side by side).
        """
        terms = parsed.terms
        sem_docs, _ = semantic or self.semantic_top(query_vec, n, mask, exact=exact)
        lex_docs, lex_scores = lexical or self.bm25.top(terms, n, mask)
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
        query_vec: np.ndarray | Callable[[], np.ndarray],
        k: int = 10,
        mask: np.ndarray | None = None,
        weights: RankerWeights | None = None,
        exact: bool = False,
        clicks: ClickModel | None | bool = True,
    ) -> list[Hit]:
        """The ``k`` best documents under ``weights`` (the published ones by default).

        ``query_vec`` is the query's vector, or a function that computes it (the
        embedding): it then runs with the vector search on a second thread while this
        one computes the BM25 top-n, which needs only the words.
        ``clicks``: ``True`` uses the published click memory, ``False`` or ``None`` none,
        or a ``ClickModel`` to use instead. Commits boosted by it join the candidates
        (when the filters allow them); without a similar past query nothing changes.
        """
        with one_thread():
            return self._rank(parsed, query_vec, k, mask, weights, exact, clicks)

    def _rank(
        self,
        parsed: ParsedQuery,
        query_vec: np.ndarray | Callable[[], np.ndarray],
        k: int,
        mask: np.ndarray | None,
        weights: RankerWeights | None,
        exact: bool,
        clicks: ClickModel | None | bool,
    ) -> list[Hit]:
        semantic = lexical = None
        if callable(query_vec):
            embed = query_vec

            def vector_side() -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
                vec = embed()
                return vec, self.semantic_top(vec, CANDIDATES, mask, exact=exact)

            pending = _side_thread().submit(vector_side)
            lexical = self.bm25.top(parsed.terms, CANDIDATES, mask)
            query_vec, semantic = pending.result()
        model = self.clicks if clicks is True else (clicks or None)
        boosts = model.boosts(query_vec) if model is not None else {}
        boost_doc: dict[int, ClickBoost] = {}
        if boosts:
            names = list(boosts)
            for h, d in zip(names, self.docs_for_hashes(names), strict=True):
                if d is not None and (mask is None or mask[d]):
                    boost_doc[int(d)] = boosts[h]
        extra = [d for d, b in boost_doc.items() if b.boost > 0]
        cand = self.candidates(
            parsed,
            query_vec,
            mask,
            exact=exact,
            extra_docs=extra,
            semantic=semantic,
            lexical=lexical,
        )
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
        if self.ann is not None:
            self.ann.save(folder / "vectors")
        else:
            VectorIndex(np.ascontiguousarray(self.vectors, dtype=np.float32)).save(
                folder / "vectors"
            )
        self.save_rest(folder)

    def save_rest(self, folder: Path) -> None:
        """Every file but the vector index (``publish_streamed`` writes that one itself)."""
        self.bm25.save(folder)
        terms = sp.csr_matrix(self.subject_terms)
        terms.sort_indices()
        for part in ("indptr", "indices", "data"):
            np.save(folder / f"subject_terms_{part}.npy", getattr(terms, part))
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
        _save_settings(
            folder,
            self.weights,
            self.clicks,
            {
                "format_version": FORMAT_VERSION,
                "model_id": self.model_id,
                "documents": self.size,
                "dimension": int(self.vectors.shape[1]) if self.size else 0,
                "vocabulary": len(self.bm25.vocabulary),
                "ann": self.ann_description(),
                **self.meta,
            },
        )

    @classmethod
    def load(cls, folder: Path, version: str = "", mmap_vectors: bool = True) -> SearchIndex:
        """Read one version; the vectors and the ANN are memory-mapped (``mmap_vectors``).

        Mapping opens a million commits in milliseconds; a query then touches only
        the ANN lists it probes and the few hundred rows it re-ranks.
        """
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        fmt = meta.get("format_version")
        if fmt not in READABLE_FORMATS:
            raise ValueError(
                f"{folder}: index format {fmt!r}, this code reads {READABLE_FORMATS}; "
                "publish the index again"
            )

        def arr(name: str, mmap: bool = True) -> np.ndarray:
            return map_array(folder / f"{name}.npy") if mmap else np.load(folder / f"{name}.npy")

        names = json.loads((folder / "names.json").read_text(encoding="utf-8"))
        ann: VectorIndex | None = None
        if fmt == 1:  # previous layout: docs in IVF list order, exact search until republished
            vectors = arr("vectors", mmap=mmap_vectors)
        else:
            ann = load_index(folder / "vectors", mmap=mmap_vectors)
            vectors = ann.vectors
            if ann.ann is None:
                ann = None
        return cls(
            vectors=vectors,
            bm25=BM25Index.load(folder),
            subject_terms=_load_subject_terms(folder, meta),
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
            ann=ann,
            weights=RankerWeights.from_json((folder / "ranker.json").read_text(encoding="utf-8")),
            model_id=str(meta["model_id"]),
            version=version,
            meta=meta,
            clicks=ClickModel.from_json((folder / "clicks.json").read_text(encoding="utf-8"))
            if (folder / "clicks.json").is_file()
            else None,
        )


def _save_settings(
    folder: Path, weights: RankerWeights, clicks: ClickModel | None, meta: dict[str, Any]
) -> None:
    """``ranker.json``, ``clicks.json`` (when there is a click memory) and ``meta.json``."""
    (folder / "ranker.json").write_text(weights.to_json(), encoding="utf-8")
    if clicks is not None:
        (folder / "clicks.json").write_text(clicks.to_json(), encoding="utf-8")
    (folder / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


def _load_subject_terms(folder: Path, meta: dict[str, Any]) -> sp.csr_matrix:
    """Memory-mapped CSR parts (format 2), or the format-1 ``.npz`` read whole."""
    if not (folder / "subject_terms_indptr.npy").is_file():
        return sp.load_npz(folder / "subject_terms.npz").tocsr()
    parts = [map_array(folder / f"subject_terms_{p}.npy") for p in ("data", "indices", "indptr")]
    shape = (len(parts[2]) - 1, int(meta.get("vocabulary", 0)) or _columns(folder))
    matrix = sp.csr_matrix((parts[0], parts[1], parts[2]), shape=shape, copy=False)
    matrix.has_sorted_indices = True  # written sorted; checking would read every index
    return matrix


def _columns(folder: Path) -> int:
    meta = json.loads((folder / "bm25_vocabulary.json").read_text(encoding="utf-8"))
    return len(meta["terms"])


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


# --------------------------------------------------------------------------- streamed writing
class IndexWriter:
    """Writes every file of a version but the vectors from commit batches given in doc order.

    What ``SearchIndex.build`` + ``save_rest`` write, file for file and byte for
    byte, without the whole corpus in memory: the BM25 postings go through
    ``BM25Writer`` (sorted runs on disk), the per-commit columns are appended to
    their ``.npy`` files batch by batch, and only the hashes (40 bytes a commit,
    to sort them), the vocabulary and the repository, author and path names stay
    in memory. A million commits then publish within a bounded amount of memory.
    """

    _COLUMNS: ClassVar[dict[str, str]] = {
        "repository_codes": "<i4",
        "author_codes": "<i4",
        "authored_at": "<i8",
        "is_merge": "|b1",
        "subject_blob": "|u1",
        "subject_offsets": "<i8",
        "doc_path_indptr": "<i8",
        "doc_path_indices": "<i4",
    }

    def __init__(
        self, folder: Path, scratch: Path | None = None, run_postings: int | None = None
    ) -> None:
        self.folder = folder
        self.size = 0
        self.bm25 = BM25Writer(scratch=scratch, run_postings=run_postings or RUN_POSTINGS)
        self._files = {n: NpyAppender(folder / f"{n}.npy", d) for n, d in self._COLUMNS.items()}
        self._subject_indices = NpyAppender(folder / "subject_terms_indices.npy", np.int32)
        self._subject_indptr: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
        self._pending_subject_terms: list[tuple[int, str]] = []  # not (yet) in the vocabulary
        self._hashes: list[np.ndarray] = []
        self._names: dict[str, dict[str, int]] = {"repositories": {}, "authors": {}, "paths": {}}
        self._blob_bytes = 0
        self._path_count = 0
        self._files["subject_offsets"].append(np.zeros(1, dtype=np.int64))
        self._files["doc_path_indptr"].append(np.zeros(1, dtype=np.int64))

    def add(self, batch: CommitCorpus) -> None:
        """Append the commits of ``batch`` (vectors are not read: zero-width is fine)."""
        m = len(batch.hashes)
        first = self.size
        self.bm25.add(tokenize(t) for t in batch.texts)
        vocabulary = self.bm25.vocabulary
        subject_counts = np.zeros(m, dtype=np.int64)
        subject_ids: list[int] = []
        for i, subject in enumerate(batch.subjects):
            row: set[int] = set()
            for t in tokenize(subject):
                j = vocabulary.get(t)
                if j is None:  # only a later commit's text can still bring it in
                    self._pending_subject_terms.append((first + i, t))
                else:
                    row.add(j)
            subject_ids.extend(sorted(row))
            subject_counts[i] = len(row)
        self._subject_indices.append(np.asarray(subject_ids, dtype=np.int32))
        self._subject_indptr.append(subject_counts)
        self._hashes.append(np.array(batch.hashes, dtype="S40"))
        files, names = self._files, self._names
        for key, column, values in (
            ("repositories", "repository_codes", batch.repositories),
            ("authors", "author_codes", batch.authors),
        ):
            codes = names[key]
            files[column].append(
                np.fromiter((codes.setdefault(v, len(codes)) for v in values), np.int32, m)
            )
        files["authored_at"].append(np.asarray(batch.authored_at, dtype=np.int64))
        files["is_merge"].append(np.asarray(batch.is_merge, dtype=bool))
        encoded = [v.encode("utf-8") for v in batch.subjects]
        sizes = np.fromiter((len(e) for e in encoded), np.int64, m)
        files["subject_blob"].append(np.frombuffer(b"".join(encoded), dtype=np.uint8))
        files["subject_offsets"].append(self._blob_bytes + np.cumsum(sizes))
        self._blob_bytes += int(sizes.sum())
        paths = names["paths"]
        path_ids = [paths.setdefault(p, len(paths)) for doc in batch.paths for p in doc]
        counts = np.fromiter((len(doc) for doc in batch.paths), np.int64, m)
        files["doc_path_indices"].append(np.asarray(path_ids, dtype=np.int32))
        files["doc_path_indptr"].append(self._path_count + np.cumsum(counts))
        self._path_count += len(path_ids)
        self.size += m

    def finish(self) -> dict[str, int]:
        """Close every file; returns ``{"documents": n, "vocabulary": terms}``."""
        for f in self._files.values():
            f.close()
        bm25 = self.bm25.finish(self.folder)
        hashes = np.concatenate(self._hashes) if self._hashes else np.zeros(0, dtype="S40")
        self._hashes = []
        order = np.argsort(hashes, kind="stable")
        np.save(self.folder / "hashes.npy", hashes)
        np.save(self.folder / "hash_sorted.npy", hashes[order])
        np.save(self.folder / "hash_sorted_docs.npy", order.astype(np.int64))
        del hashes, order
        self._finish_subject_terms(bm25["terms"])
        (self.folder / "names.json").write_text(
            json.dumps({k: list(v) for k, v in self._names.items()}), encoding="utf-8"
        )
        return {"documents": self.size, "vocabulary": bm25["terms"]}

    def close(self) -> None:
        """Give up: drop the BM25 runs (the folder itself is the caller's to remove)."""
        self.bm25.close()

    def _finish_subject_terms(self, terms: int) -> None:
        self._subject_indices.close()
        counts = np.concatenate(self._subject_indptr)
        indptr = np.cumsum(counts)
        vocabulary = self.bm25.vocabulary
        late = sorted(
            {(d, vocabulary[t]) for d, t in self._pending_subject_terms if t in vocabulary}
        )
        self._pending_subject_terms = []
        path = self.folder / "subject_terms_indices.npy"
        if late:  # subject words first seen in a later commit's text: rows rebuilt (rare)
            matrix = sp.csr_matrix(
                (np.ones(len(np.load(path)), np.float32), np.load(path), indptr),
                shape=(self.size, terms),
            )
            extra = sp.csr_matrix(
                (np.ones(len(late), np.float32), ([d for d, _ in late], [j for _, j in late])),
                shape=(self.size, terms),
            )
            matrix = (matrix + extra).tocsr()
            matrix.data[:] = 1.0
            matrix.sort_indices()
            np.save(path, matrix.indices.astype(np.int32))
            indptr = matrix.indptr.astype(np.int64)
        nnz = int(indptr[-1])
        idx = index_dtype(nnz, self.size, terms)
        if idx != np.int32:
            raise ValueError(
                f"subject terms: {nnz} postings over {self.size} commits and {terms} terms "
                "need 64-bit indices, which this writer does not produce"
            )
        np.save(self.folder / "subject_terms_indptr.npy", indptr.astype(idx))
        data = NpyAppender(self.folder / "subject_terms_data.npy", np.float32)
        ones = np.ones(min(nnz, 1 << 20), dtype=np.float32)
        for s in range(0, nnz, len(ones) or 1):
            data.append(ones[: min(len(ones), nnz - s)])
        data.close()


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


def publish_streamed(
    root: Path,
    corpus: CommitCorpus,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    dim: int,
    model_id: str,
    weights: RankerWeights | None = None,
    clicks: ClickModel | None = None,
    meta: dict[str, Any] | None = None,
    keep: int = KEEP_VERSIONS,
    min_age_seconds: float = 300.0,
) -> SearchIndex:
    """Publish ``corpus`` (zero-width vectors) with its vectors taken from ``chunks``.

    The vectors go straight from the chunks (``(doc ids, rows)``, any order) to the
    new version's files (``core.vectors.write_streamed``): the float matrix is never
    whole in memory, which is what bounds a million-commit publish.
    """
    index = SearchIndex.build(corpus, model_id, weights=weights, clicks=clicks)
    trained = _reusable_lists(root, model_id)

    def write(folder: Path, version: str) -> None:
        folder.mkdir(parents=True, exist_ok=False)
        write_streamed(folder / "vectors", chunks, index.size, dim, trained=trained)
        loaded = load_index(folder / "vectors")
        index.vectors = loaded.vectors
        index.ann = loaded if loaded.ann is not None else None
        index.meta = {
            **index.meta,
            **(meta or {}),
            "version": version,
            "published_at": datetime.now(UTC).isoformat(),
        }
        index.save_rest(folder)

    index.version = publish_version(root, write, keep=keep, min_age_seconds=min_age_seconds)
    return index


def publish_batches(
    root: Path,
    batches: Iterable[CommitCorpus],
    chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
    dim: int,
    model_id: str,
    weights: RankerWeights | None = None,
    clicks: ClickModel | None = None,
    meta: dict[str, Any] | None = None,
    keep: int = KEEP_VERSIONS,
    min_age_seconds: float = 300.0,
    run_postings: int | None = None,
) -> dict[str, Any]:
    """Publish commits that arrive in ``batches`` (doc order), then their vectors from ``chunks()``.

    The bounded-memory publish (``IndexWriter`` for the text side,
    ``core.vectors.write_streamed`` for the vectors): the same files as
    ``publish_streamed`` writes for the same corpus. ``chunks`` is called once every
    batch was written, so that it can use what the batches brought (the doc order).
    ``run_postings``: BM25 tokens sorted per run on disk (``BM25Writer``).
    Returns the new version's ``meta.json`` (with ``version``).
    """
    trained = _reusable_lists(root, model_id)
    written: dict[str, Any] = {}

    def write(folder: Path, version: str) -> None:
        folder.mkdir(parents=True, exist_ok=False)
        writer = IndexWriter(folder, scratch=folder, run_postings=run_postings)
        try:
            for batch in batches:
                writer.add(batch)
            sizes = writer.finish()
        finally:
            writer.close()
        del writer  # its vocabulary and names are written: free them before the vectors
        n = sizes["documents"]
        vectors = write_streamed(folder / "vectors", chunks(), n, dim, trained=trained)
        ann = f"{vectors['kind']} {vectors.get('lists')} lists, nprobe {vectors.get('nprobe')}"
        written.update(
            {
                "format_version": FORMAT_VERSION,
                "model_id": model_id,
                "documents": n,
                "dimension": dim if n else 0,
                "vocabulary": sizes["vocabulary"],
                "ann": ann if vectors["kind"] != "exact" else "exact",
                **(meta or {}),
                "version": version,
                "published_at": datetime.now(UTC).isoformat(),
            }
        )
        _save_settings(folder, weights or RankerWeights(), clicks, written)

    version = publish_version(root, write, keep=keep, min_age_seconds=min_age_seconds)
    return {**written, "version": version}


def _reusable_lists(root: Path, model_id: str) -> Path | None:
    """The current version's trained vector lists, when its vectors come from ``model_id``."""
    previous = published_meta(root)
    if previous is None or previous.get("model_id") != model_id:
        return None
    return root / "versions" / str(previous["version"]) / "vectors" / "trained.faiss"


def published_meta(root: Path) -> dict[str, Any] | None:
    """``meta.json`` of the current version (None when nothing readable is published)."""
    try:
        version = current_version(root)
        meta = json.loads((root / "versions" / version / "meta.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return {**meta, "version": version} if isinstance(meta, dict) else None


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
