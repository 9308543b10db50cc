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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from symbiotic_assets.search.text import COMMIT_TEXT_VERSION, commit_text

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

    from symbiotic_assets.core.embedding import IssueEmbedder
    from symbiotic_assets.search.index import CommitCorpus

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
        import pandas as pd

        frame = pd.DataFrame(
            {
                "repository": repository,
                "hash": [r[1] for r in part],
                "model": key,
                "text_sha256": [hashlib.sha256(t.encode()).hexdigest() for t in texts],
                "vector": [v.tolist() for v in vectors],
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


def load_corpus(
    con: duckdb.DuckDBPyConnection, model: str, repositories: list[str] | None = None
) -> CommitCorpus:
    """Reachable commits that have a vector for ``model``, with text and metadata, to publish."""
    from symbiotic_assets.search.index import CommitCorpus

    ensure_search_schema(con)
    where = "c.is_reachable"
    params: list[object] = [model]
    if repositories is not None:
        where += " AND c.repository IN (SELECT unnest(?::VARCHAR[]))"
        params.append(repositories)
    rows = con.execute(
        f"""
        WITH files AS (
            SELECT repository, commit_hash, list(path ORDER BY path) AS paths
            FROM git.commit_files GROUP BY ALL
        )
        SELECT c.repository, c.hash, coalesce(c.author_name, c.author_email, ''),
               epoch(c.authored_at)::BIGINT, c.is_merge, coalesce(c.subject, ''), c.body,
               coalesce(f.paths, []), e.vector
        FROM git.commits c
        JOIN search.commit_embeddings e
          ON e.repository = c.repository AND e.hash = c.hash AND e.model = ?
        LEFT JOIN files f ON f.repository = c.repository AND f.commit_hash = c.hash
        WHERE {where}
        ORDER BY c.repository, c.authored_at, c.hash
        """,
        params,
    ).fetchall()
    vectors = (
        np.asarray([r[8] for r in rows], dtype=np.float32)
        if rows
        else np.zeros((0, DIMENSION), dtype=np.float32)
    )
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
