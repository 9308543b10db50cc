from __future__ import annotations

import numpy as np

from symbiotic_assets.search.index import CommitCorpus

DIM = 384


def unit(
    rng: np.random.Generator, around: np.ndarray | None = None, noise: float = 1.0
) -> np.ndarray:
    v = rng.normal(size=DIM)
    if around is not None:
        v = around + noise * v / np.sqrt(DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def make_corpus(rows: list[dict], vectors: np.ndarray) -> CommitCorpus:
    """rows: hash, subject, body, paths, author, repository, ts, merge."""
    from symbiotic_assets.search.text import commit_text

    return CommitCorpus(
        hashes=[r["hash"] for r in rows],
        repositories=[r.get("repository", "demo") for r in rows],
        authors=[r.get("author", "Alice") for r in rows],
        authored_at=np.array([r.get("ts", 1_700_000_000 + i) for i, r in enumerate(rows)]),
        is_merge=np.array([r.get("merge", False) for r in rows]),
        subjects=[r["subject"] for r in rows],
        texts=[commit_text(r["subject"], r.get("body"), r.get("paths", [])) for r in rows],
        paths=[r.get("paths", []) for r in rows],
        vectors=vectors,
    )
