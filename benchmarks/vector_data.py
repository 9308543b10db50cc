"""Realistic vectors for the vector-index benchmarks: real MiniLM embeddings, grown by perturbation.

The base set is real text embedded with the project's embedder: commit messages
(subject and body) of the git repositories given (this checkout by default, any
clone with ``--repo``) plus generated issue texts from ``benchmarks.fix_history``
to reach ``base`` rows. A quarter of the texts is held out as queries and never
stored. To reach 100k or 1M rows each stored row is a base vector plus Gaussian
noise, renormalised (cosine to its source about 0.8 to 0.95): near-duplicates
the way reworded commits and repeated issues are, not template clusters.

Base embeddings are cached under ``$SYMBIOTIC_HOME/bench/`` keyed by the texts
and the model, so later runs skip the model. Each size gets its own query slice
(``queries_for(size_index)``): query vectors are never reused across sizes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from symbiotic_assets.core.embedding import IssueEmbedder

N_REPOSITORIES = 40


def bench_dir() -> Path:
    home = Path(os.environ.get("SYMBIOTIC_HOME", ".symbiotic"))
    out = home / "bench"
    out.mkdir(parents=True, exist_ok=True)
    return out


def commit_messages(repo: Path, limit: int) -> list[str]:
    """Distinct commit messages (subject + body) of ``repo``, newest first."""
    out = subprocess.run(
        ["git", "-C", str(repo), "log", "--all", "--no-merges", "--format=%s%n%b%x00"],
        check=True,
        capture_output=True,
        text=True,
        errors="replace",
    ).stdout
    seen: dict[str, None] = {}
    for msg in out.split("\x00"):
        text = " ".join(msg.split())[:400]
        if len(text) > 12:
            seen.setdefault(text, None)
        if len(seen) >= limit:
            break
    return list(seen)


def issue_texts(n: int, seed: int = 11) -> list[str]:
    from benchmarks.fix_history import generate_history
    from symbiotic_assets.core.embedding import issue_text

    history = generate_history(n=n, seed=seed)
    seen: dict[str, None] = {}
    for a in history.attempts:
        seen.setdefault(issue_text(a.issue_type, a.message, a.file_path, a.stage), None)
    return list(seen)


@dataclass
class BaseSet:
    texts: list[str]
    vectors: np.ndarray  # (len(texts), 384) unit rows
    stored: np.ndarray  # indices of texts used for stored rows
    held_out: np.ndarray  # indices of texts used only as queries


def base_set(repos: list[Path], base: int = 24_000, seed: int = 5) -> BaseSet:
    """Embed (or load from the cache) ``base`` real texts; split stored / held-out 3:1."""
    from symbiotic_assets.core.embedding import IssueEmbedder

    texts: list[str] = []
    for repo in repos:
        texts += commit_messages(repo, base)
    texts = list(dict.fromkeys(texts))[: base * 2 // 3]
    texts += issue_texts(max(1000, (base - len(texts)) * 3))[: base - len(texts)]
    embedder = IssueEmbedder()
    vectors = cached_embeddings(texts, embedder)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    cut = len(texts) * 3 // 4
    return BaseSet(texts, vectors, np.sort(order[:cut]), np.sort(order[cut:]))


def cached_embeddings(texts: list[str], embedder: IssueEmbedder) -> np.ndarray:
    """Vectors of ``texts``; texts embedded by an earlier run come from the cache file.

    The cache maps text hashes to vectors per model, so a checkout that gained
    commits since the last run embeds only the new messages.
    """
    tag = hashlib.sha256(embedder.model_id.encode()).hexdigest()[:12]
    cache = bench_dir() / f"vector-base-{tag}.npz"
    keys = np.array([hashlib.sha256(t.encode()).hexdigest()[:24] for t in texts])
    known: dict[str, np.ndarray] = {}
    if cache.is_file():
        with np.load(cache) as data:
            known = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
    missing = [i for i, k in enumerate(keys.tolist()) if k not in known]
    if missing:
        fresh = embedder.embed_many([texts[i] for i in missing], batch_size=64)
        for i, v in zip(missing, fresh, strict=True):
            known[str(keys[i])] = v
        np.savez(cache, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
    return np.stack([known[k] for k in keys.tolist()]).astype(np.float32)


def grow(base: BaseSet, n: int, seed: int = 0, chunk: int = 100_000) -> np.ndarray:
    """``n`` unit rows: stored base vectors plus per-row Gaussian noise, renormalised."""
    return grow_with_sources(base, n, seed, chunk)[0]


def grow_with_sources(
    base: BaseSet, n: int, seed: int = 0, chunk: int = 100_000
) -> tuple[np.ndarray, np.ndarray]:
    """``grow`` plus, per row, the index (into ``base.stored``) of the text it came from."""
    rng = np.random.default_rng(seed)
    src = base.vectors[base.stored]
    dim = src.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    owners = rng.integers(0, len(src), n)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        owner = owners[s:e]
        sigma = rng.uniform(0.016, 0.04, size=(e - s, 1)).astype(np.float32)
        block = src[owner] + rng.standard_normal((e - s, dim), dtype=np.float32) * sigma
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[s:e] = block
    return out, owners


def repositories(n: int, seed: int = 1) -> np.ndarray:
    """A repository code per row, Zipf-like (a few large repositories, many small)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, N_REPOSITORIES + 1) ** 0.9
    return rng.choice(N_REPOSITORIES, size=n, p=p / p.sum()).astype(np.int32)


def queries_for(base: BaseSet, size_index: int, count: int) -> np.ndarray:
    """Held-out real query vectors, a disjoint slice per size (wraps with fresh noise)."""
    held = base.vectors[base.held_out]
    start = size_index * count
    rng = np.random.default_rng(1000 + size_index)
    idx = np.arange(start, start + count) % len(held)
    q = held[idx].copy()
    if start + count > len(held):  # reused texts get noise so no vector repeats
        q += rng.standard_normal(q.shape, dtype=np.float32) * 0.02
        q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q
