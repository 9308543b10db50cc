"""Commit vectors in the warehouse, and reading the warehouse into a corpus to publish.

``search.commit_embeddings`` holds one unit vector per (repository, commit, model key),
where the model key is the embedder's ``model_id`` plus the commit-text version
(``all-MiniLM-L6-v2@onnx-int8-fused|commit-text-v1``): changing either re-embeds
everything, changing neither embeds only commits without a row. Vectors are also
cached by content hash in ``search.embedding_cache`` (the embedder's
``VectorCacheTable``), so a commit whose text is identical to one seen before
(cherry-picks, rebases, the same history in two clones) costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from symbiotic_assets.core.vectors import vector_array as vector_array  # re-exported
from symbiotic_assets.core.vectors import vectors_of
from symbiotic_assets.search.text import COMMIT_TEXT_VERSION, commit_text

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import duckdb

    from symbiotic_assets.core.embedding import IssueEmbedder
    from symbiotic_assets.search.clicks import ClickModel
    from symbiotic_assets.search.index import CommitCorpus
    from symbiotic_assets.search.ranker import RankerWeights

DIMENSION = 384

SEARCH_SCHEMA_SQL = f"""
CREATE SCHEMA IF NOT EXISTS search;
CREATE TABLE IF NOT EXISTS search.commit_embeddings (
    repository VARCHAR NOT NULL,
    hash VARCHAR NOT NULL,
    model VARCHAR NOT NULL,                -- embedder model_id | commit-text version
    text_sha256 VARCHAR NOT NULL,          -- of the commit text that was embedded
    vector FLOAT[{DIMENSION}] NOT NULL,    -- unit length
    embedded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (repository, hash, model)
);
CREATE TABLE IF NOT EXISTS search.ranker_weights (
    trained_at TIMESTAMP NOT NULL,
    source VARCHAR NOT NULL,               -- default | learned
    weights_json VARCHAR NOT NULL,         -- RankerWeights.to_json()
    searches INTEGER,
    clicks INTEGER,
    pairs INTEGER
);
CREATE TABLE IF NOT EXISTS search.click_model (
    trained_at TIMESTAMP NOT NULL,
    model_json VARCHAR NOT NULL,           -- ClickModel.to_json()
    queries INTEGER                        -- remembered searches with a click
);
"""

# Paths of one commit, sorted, as a list; merges have none (their diff is not theirs).
COMMIT_ROWS_SQL = """
SELECT c.repository, c.hash, c.subject, c.body,
       coalesce(list(f.path ORDER BY f.path) FILTER (WHERE f.path IS NOT NULL), []) AS paths
FROM git.commits c
LEFT JOIN git.commit_files f ON f.repository = c.repository AND f.commit_hash = c.hash
WHERE c.repository = ? AND c.is_reachable {extra}
GROUP BY c.repository, c.hash, c.subject, c.body, c.authored_at
ORDER BY c.authored_at, c.hash
"""


def model_key(embedder: IssueEmbedder) -> str:
    return f"{embedder.model_id}|commit-text-v{COMMIT_TEXT_VERSION}"


def ensure_search_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SEARCH_SCHEMA_SQL)


@dataclass(frozen=True)
class EmbedResult:
    repository: str
    pending: int  # commits without a vector for this model key before the run
    embedded: int  # rows written
    model_calls: int  # texts that went through the model (the rest came from caches)
    total: int  # vectors stored for the repository and model key after the run


def embed_repository(
    con: duckdb.DuckDBPyConnection,
    repository: str,
    embedder: IssueEmbedder,
    chunk: int = 2_000,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> EmbedResult:
    """Embed the reachable commits of ``repository`` that have no vector for the current model."""
    from symbiotic_assets.core.embedding import VectorCacheTable

    ensure_search_schema(con)
    key = model_key(embedder)
    sql = COMMIT_ROWS_SQL.format(
        extra="AND NOT EXISTS (SELECT 1 FROM search.commit_embeddings e WHERE e.repository = "
        "c.repository AND e.hash = c.hash AND e.model = ?)"
    )
    rows = con.execute(sql, [repository, key]).fetchall()
    cache = VectorCacheTable(con, "search.embedding_cache", dim=DIMENSION)
    calls_before = embedder.model_calls
    written = 0
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        texts = [commit_text(r[2], r[3], r[4]) for r in part]
        vectors = embedder.embed_many(texts, batch_size=batch_size, persistent=cache)
        if vectors.shape[1] != DIMENSION:
            raise ValueError(
                f"embedder {embedder.model_id!r} gives {vectors.shape[1]}-dim vectors; "
                f"search.commit_embeddings holds {DIMENSION}"
            )
        frame = pa.table(
            {
                "repository": pa.array([repository] * len(part)),
                "hash": pa.array([r[1] for r in part]),
                "model": pa.array([key] * len(part)),
                "text_sha256": pa.array([hashlib.sha256(t.encode()).hexdigest() for t in texts]),
                "vector": vector_array(vectors),
            }
        )
        con.register("_search_new_vectors", frame)
        try:
            con.execute(
                f"INSERT INTO search.commit_embeddings "
                f"SELECT repository, hash, model, text_sha256, vector::FLOAT[{DIMENSION}], "
                "now()::TIMESTAMP FROM _search_new_vectors ON CONFLICT DO NOTHING"
            )
        finally:
            con.unregister("_search_new_vectors")
        written += len(part)
        if progress is not None:
            progress(written, len(rows))
    total_row = con.execute(
        "SELECT count(*) FROM search.commit_embeddings WHERE repository = ? AND model = ?",
        [repository, key],
    ).fetchone()
    return EmbedResult(
        repository=repository,
        pending=len(rows),
        embedded=written,
        model_calls=embedder.model_calls - calls_before,
        total=int(total_row[0]) if total_row else 0,
    )


CORPUS_SQL = """
WITH files AS (
    SELECT repository, commit_hash, list(path ORDER BY path) AS paths
    FROM git.commit_files GROUP BY ALL
)
SELECT c.repository, c.hash, coalesce(c.author_name, c.author_email, ''),
       epoch(c.authored_at)::BIGINT, c.is_merge, coalesce(c.subject, ''), c.body,
       coalesce(f.paths, [])
FROM git.commits c
JOIN search.commit_embeddings e
  ON e.repository = c.repository AND e.hash = c.hash AND e.model = ?
LEFT JOIN files f ON f.repository = c.repository AND f.commit_hash = c.hash
WHERE {where}
ORDER BY c.repository, c.authored_at, c.hash
"""


def _where(model: str, repositories: list[str] | None) -> tuple[str, list[object]]:
    where = "c.is_reachable"
    params: list[object] = [model]
    if repositories is not None:
        where += " AND c.repository IN (SELECT unnest(?::VARCHAR[]))"
        params.append(repositories)
    return where, params


def corpus_fingerprint(
    con: duckdb.DuckDBPyConnection, model: str, repositories: list[str] | None = None
) -> str:
    """Changes whenever the corpus ``load_corpus`` would return changes; one aggregate query.

    Lets ``search/serving_index`` skip a publish when nothing changed (commits
    are immutable by hash: reachability, a new vector or new commits change it).
    The reachable commits and the model's vectors are summed up separately, without
    joining them: at 1M commits the join took 0.77 s of a no-op publish, the two
    scans 0.20 s. A vector of a commit outside the corpus then also counts as a
    change (one publish too many, never one too few).
    """
    ensure_search_schema(con)
    only = " AND repository IN (SELECT unnest(?::VARCHAR[]))" if repositories is not None else ""
    picked: list[object] = [repositories] if repositories is not None else []
    row = con.execute(
        f"""
        WITH c AS (
            SELECT count(*) AS n, coalesce(bit_xor(hash(repository, hash, is_merge, authored_at,
                   author_name, author_email)), 0) AS x
            FROM git.commits WHERE is_reachable{only}
        ), e AS (
            SELECT count(*) AS n,
                   coalesce(bit_xor(hash(repository, hash, text_sha256, embedded_at)), 0) AS x
            FROM search.commit_embeddings WHERE model = ?{only}
        )
        SELECT c.n, c.x, e.n, e.x FROM c, e
        """,
        [*picked, model, *picked],
    ).fetchone()
    commits, c_digest, vectors, e_digest = (int(v) for v in row) if row else (0, 0, 0, 0)
    return f"{commits}:{c_digest:x}:{vectors}:{e_digest:x}"


def load_corpus(
    con: duckdb.DuckDBPyConnection,
    model: str,
    repositories: list[str] | None = None,
    with_vectors: bool = True,
) -> CommitCorpus:
    """Reachable commits that have a vector for ``model``, with text and metadata, to publish.

    ``with_vectors=False`` leaves ``vectors`` as a zero-width (n, 0) array: the
    streamed publish reads them with ``vector_chunks`` instead.
    """
    from symbiotic_assets.search.index import CommitCorpus

    ensure_search_schema(con)
    where, params = _where(model, repositories)
    rows = con.execute(CORPUS_SQL.format(where=where), params).fetchall()
    if with_vectors:
        vectors = np.empty((len(rows), DIMENSION), dtype=np.float32)
        for docs, block in vector_chunks(con, model, [r[0] for r in rows], [r[1] for r in rows]):
            vectors[docs] = block
    else:
        vectors = np.zeros((len(rows), 0), dtype=np.float32)
    return CommitCorpus(
        hashes=[r[1] for r in rows],
        repositories=[r[0] for r in rows],
        authors=[r[2] for r in rows],
        authored_at=np.asarray([r[3] or 0 for r in rows], dtype=np.int64),
        is_merge=np.asarray([bool(r[4]) for r in rows], dtype=bool),
        subjects=[r[5] for r in rows],
        texts=[commit_text(r[5], r[6], r[7]) for r in rows],
        paths=[list(r[7]) for r in rows],
        vectors=vectors,
    )


# The corpus of ``load_corpus`` plus each commit's change terms (``change_terms.change_texts``),
# in one ordered stream: the change words are joined here instead of read into a dict. The
# paths come in a second stream in the same order (``FILES_STREAM_SQL``): joining the
# per-commit path lists here made DuckDB run out of a 512 MB memory limit at 1M commits,
# where the two plain sorted streams stay within 256 MB (they spill to disk).
CORPUS_STREAM_SQL = """
WITH g AS (
    SELECT repository, commit_hash,
           list(DISTINCT branch) FILTER (WHERE branch IS NOT NULL) AS branches,
           list(DISTINCT pr_number) FILTER (WHERE pr_number IS NOT NULL) AS prs
    FROM search.change_groups GROUP BY ALL
)
SELECT c.repository, c.hash, coalesce(c.author_name, c.author_email, ''),
       coalesce(epoch(c.authored_at)::BIGINT, 0), coalesce(c.is_merge, false),
       coalesce(c.subject, ''), c.body,
       coalesce(t.functions, []), coalesce(t.identifiers, []),
       coalesce(g.branches, []), coalesce(g.prs, [])
FROM git.commits c
JOIN search.commit_embeddings e
  ON e.repository = c.repository AND e.hash = c.hash AND e.model = ?
LEFT JOIN search.change_terms t ON t.repository = c.repository AND t.hash = c.hash
LEFT JOIN g ON g.repository = c.repository AND g.commit_hash = c.hash
WHERE {where}
ORDER BY c.repository, c.authored_at, c.hash
"""
FILES_STREAM_SQL = """
SELECT f.repository, f.commit_hash, f.path
FROM git.commit_files f
JOIN git.commits c ON c.repository = f.repository AND c.hash = f.commit_hash
JOIN search.commit_embeddings e
  ON e.repository = c.repository AND e.hash = c.hash AND e.model = ?
WHERE {where}
ORDER BY c.repository, c.authored_at, c.hash, f.path
"""
BATCH_ROWS = 10_000
VECTOR_ROWS = 16_384
"""Vectors per Arrow batch while publishing (24 MB at 384 dimensions, a few copies of it live)."""
PUBLISH_MEMORY_LIMIT = "256MB"
"""DuckDB's memory limit while a publish reads: its sort spills to disk beyond it."""


@dataclass
class DocOrder:
    """Repository and hash of every commit a ``corpus_batches`` stream gave, in doc order."""

    repositories: list[pa.Array]
    hashes: list[pa.Array]


def corpus_batches(
    con: duckdb.DuckDBPyConnection,
    model: str,
    repositories: list[str] | None = None,
    rows: int = BATCH_ROWS,
    order: DocOrder | None = None,
) -> Iterator[CommitCorpus]:
    """``with_change_terms(load_corpus(...))`` without vectors, ``rows`` commits at a time.

    DuckDB streams the ordered rows as Arrow record batches, so only one batch of
    Python strings exists at a time. ``order`` collects the (repository, hash)
    columns as compact Arrow arrays, for ``vector_chunks`` afterwards.
    """
    from symbiotic_assets.search.change_terms import change_text, ensure_schema
    from symbiotic_assets.search.index import CommitCorpus

    ensure_search_schema(con)
    ensure_schema(con)
    where, params = _where(model, repositories)
    reader = con.execute(CORPUS_STREAM_SQL.format(where=where), params).to_arrow_reader(rows)
    files = con.cursor()  # a second result stream needs a connection of its own
    paths_of = _PathsInOrder(
        files.execute(FILES_STREAM_SQL.format(where=where), params).to_arrow_reader(rows)
    )
    for batch in reader:
        if order is not None:  # copies: a column of an imported batch keeps all of it alive
            order.repositories.append(pa.concat_arrays([batch.column(0)]))
            order.hashes.append(pa.concat_arrays([batch.column(1)]))
        cols = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        repos, hashes, authors, _, _, subjects, bodies = cols[:7]
        paths = [paths_of.take(r, h) for r, h in zip(repos, hashes, strict=True)]
        texts = []
        for subject, body, doc_paths, functions, identifiers, branches, prs in zip(
            subjects, bodies, paths, *cols[7:], strict=True
        ):
            text = commit_text(subject, body, doc_paths)
            extra = change_text(functions, identifiers, branches, prs)
            texts.append(f"{text}\n{extra}" if extra else text)
        yield CommitCorpus(
            hashes=hashes,
            repositories=repos,
            authors=authors,
            authored_at=np.asarray(batch.column(3).to_numpy(), dtype=np.int64),
            is_merge=np.asarray(batch.column(4).to_numpy(zero_copy_only=False), dtype=bool),
            subjects=subjects,
            texts=texts,
            paths=paths,
            vectors=np.zeros((len(hashes), 0), dtype=np.float32),
        )
    paths_of.check_done()
    files.close()


class _PathsInOrder:
    """The paths of each commit from a ``(repository, hash, path)`` stream in doc order."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self._rows = self._read(reader)
        self._head = next(self._rows, None)

    @staticmethod
    def _read(reader: pa.RecordBatchReader) -> Iterator[tuple[str, str, str]]:
        for batch in reader:
            yield from zip(*(batch.column(i).to_pylist() for i in range(3)), strict=True)

    def take(self, repository: str, commit: str) -> list[str]:
        """The next commit's paths (none when the stream's next row is another commit's)."""
        out: list[str] = []
        while self._head is not None and self._head[0] == repository and self._head[1] == commit:
            out.append(self._head[2])
            self._head = next(self._rows, None)
        return out

    def check_done(self) -> None:
        """Every file row was matched to its commit; otherwise the streams fell out of step."""
        if self._head is not None:
            repository, commit, path = self._head
            raise ValueError(
                f"git.commit_files row {repository}@{commit} {path!r} came out of step with the "
                "commits (the warehouse changed while publishing?)"
            )


def drop_cached_blocks(con: duckdb.DuckDBPyConnection, limit: str) -> None:
    """Make DuckDB evict the table blocks it keeps cached, then allow ``limit`` again.

    Best effort: lowering the limit evicts unpinned blocks; if DuckDB cannot
    (blocks in use), the limit is simply put back.
    """
    import duckdb

    try:
        con.execute("SET memory_limit = '16MB'")
    except duckdb.Error:
        pass
    finally:
        con.execute(f"SET memory_limit = '{limit}'")


@contextmanager
def memory_limit(con: duckdb.DuckDBPyConnection, limit: str) -> Iterator[None]:
    """DuckDB's ``memory_limit`` set to ``limit`` for the block, then put back as it was."""
    row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    before = str(row[0]) if row else None
    con.execute(f"SET memory_limit = '{limit}'")
    try:
        yield
    finally:
        if before is not None:
            con.execute(f"SET memory_limit = '{before}'")


def vector_chunks(
    con: duckdb.DuckDBPyConnection,
    model: str,
    repositories: list[str] | pa.ChunkedArray,
    hashes: list[str] | pa.ChunkedArray,
    chunk: int = 65_536,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(doc ids, vectors)`` blocks for the commits given in doc order, as Arrow batches.

    The join to the doc numbers lets DuckDB stream the vectors in storage order
    (no sort of a million 1.5 KB rows); callers place each block by its doc ids.
    Every listed commit must have a vector for ``model`` (``load_corpus`` only
    lists such commits); a missing one raises, naming it.
    """
    n = len(hashes)
    if len(repositories) != n:
        raise ValueError(f"vector_chunks: {len(repositories)} repositories for {n} hashes")
    docs = pa.table(
        {
            "repository": _strings(repositories),
            "hash": _strings(hashes),
            "doc": pa.array(np.arange(n, dtype=np.int64)),
        }
    )
    seen = np.zeros(n, dtype=bool)
    con.register("_publish_docs", docs)
    try:
        reader = con.execute(
            "SELECT d.doc, e.vector FROM search.commit_embeddings e JOIN _publish_docs d "
            "ON e.repository = d.repository AND e.hash = d.hash WHERE e.model = ?",
            [model],
        ).to_arrow_reader(chunk)
        for batch in reader:
            ids = np.asarray(batch.column(0).to_numpy(), dtype=np.int64)
            seen[ids] = True
            yield ids, vectors_of(batch.column(1), DIMENSION)
    finally:
        con.unregister("_publish_docs")
    if not seen.all():
        miss = int(np.flatnonzero(~seen)[0])
        raise ValueError(
            f"commit {_at(repositories, miss)}@{_at(hashes, miss)}: no vector for model {model!r} "
            "(embeddings changed while publishing?)"
        )


def _strings(values: list[str] | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    return values if isinstance(values, pa.ChunkedArray) else pa.array(values, pa.string())


def _at(values: list[str] | pa.ChunkedArray, i: int) -> str:
    return str(values[i].as_py()) if isinstance(values, pa.ChunkedArray) else values[i]


def _without_trained_at(text: str) -> str:
    doc = json.loads(text)
    doc.pop("trained_at", None)
    return json.dumps(doc, sort_keys=True)


@dataclass(frozen=True)
class PublishResult:
    version: str
    commits: int
    changed: bool  # False: nothing changed since the published version; no new version
    ann: str
    repositories: dict[str, int]


def publish_from_warehouse(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    model: str,
    weights: RankerWeights | None = None,
    clicks: ClickModel | None = None,
    batch_rows: int = BATCH_ROWS,
    run_postings: int | None = None,
) -> PublishResult:
    """Publish the search index from the warehouse, unless nothing changed since the last one.

    A fingerprint of the corpus (one aggregate query), the ranker weights, the
    click memory and the index format is stored in ``meta.json``; when the current
    version carries the same one, nothing is written (a no-op run costs the query).
    Otherwise everything streams: the commits come ``batch_rows`` at a time in doc
    order and are written by ``search.index.IndexWriter`` (BM25 postings sorted in
    runs of ``run_postings`` tokens on disk), then the vectors come from DuckDB as
    Arrow batches straight into the new version's files. DuckDB's own memory is
    capped (``PUBLISH_MEMORY_LIMIT``) meanwhile; its sort spills to disk instead.
    """
    from collections import Counter

    from symbiotic_assets.search.change_terms import change_fingerprint
    from symbiotic_assets.search.index import FORMAT_VERSION, publish_batches, published_meta

    parts = [
        f"format-{FORMAT_VERSION}",
        model,
        corpus_fingerprint(con, model),
        # the weights themselves, not when they were (re)trained: an unchanged retrain is no change
        json.dumps([weights.weights, weights.source], sort_keys=True) if weights else "",
        _without_trained_at(clicks.to_json()) if clicks is not None else "",
        change_fingerprint(con),
    ]
    fingerprint = hashlib.sha256("\n".join(parts).encode()).hexdigest()
    current = published_meta(root)
    if current is not None and current.get("source_fingerprint") == fingerprint:
        return PublishResult(
            version=str(current["version"]),
            commits=int(current.get("documents", 0)),
            changed=False,
            ann=str(current.get("ann", "")),
            repositories=dict(current.get("repositories", {})),
        )
    # BM25 also matches what each commit changed (functions, identifiers, PR branch)
    by_repo: Counter[str] = Counter()
    order = DocOrder([], [])

    def batches() -> Iterator[CommitCorpus]:
        for batch in corpus_batches(con, model, rows=batch_rows, order=order):
            by_repo.update(batch.repositories)
            yield batch

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        repos = pa.chunked_array(order.repositories, pa.string())
        hashes = pa.chunked_array(order.hashes, pa.string())
        order.repositories, order.hashes = [], []
        yield from vector_chunks(con, model, repos, hashes, chunk=VECTOR_ROWS)
        del repos, hashes
        # every vector was read: DuckDB's cached blocks of them would only sit next to
        # the ANN being built (at 1M commits the 8-bit codes alone are 384 MB)
        drop_cached_blocks(con, PUBLISH_MEMORY_LIMIT)

    meta: dict[str, object] = {"source_fingerprint": fingerprint, "repositories": by_repo}
    with memory_limit(con, PUBLISH_MEMORY_LIMIT):
        written = publish_batches(
            root, batches(), chunks, DIMENSION, model, weights=weights, clicks=clicks, meta=meta,
            run_postings=run_postings,
        )  # fmt: skip
    return PublishResult(
        str(written["version"]), int(written["documents"]), True, str(written["ann"]),
        dict(by_repo),
    )  # fmt: skip
