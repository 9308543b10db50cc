"""The published recommender: vectors, attempt columns and learned state in one folder.

Readers (the Python API, CLI, MCP server) never open the warehouse: the
``memory/recommender_index`` asset writes a complete version folder under
``<root>/versions/`` (written as ``.staging-*``, renamed when complete), then
swaps the pointer file ``<root>/CURRENT`` with ``os.replace``, so a reader sees
the old version or the new one, never a half-written one (the same scheme as the
search index). Older versions are kept a while for readers that read the
pointer just before a swap.

A version folder holds:

* ``index/``: the vector index (``core.vectors.VectorIndex``: float rows in time
  order plus, above ``APPROXIMATE_ABOVE`` rows, a faiss IVF index), memory-mapped
  on load so that opening a million attempts costs milliseconds, not a copy;
* ``columns.npz``: per row success, epoch timestamp, attempt id, and codes into
  the issue-type and ``agent:strategy`` name lists;
* ``text.npy`` / ``text_offsets.npy``: messages and file paths packed as UTF-8,
  for the evidence shown with a recommendation;
* ``state.json``: the ``RecommenderState`` plus the model id, version and metrics;
* ``meta.json``: names, row count, model, when it was published.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from symbiotic_assets.core import publish as versioned
from symbiotic_assets.core.publish import publish_version
from symbiotic_assets.core.vectors import VectorIndex, load_index
from symbiotic_assets.memory.recommender import AttemptMemory, RecommenderState

FORMAT_VERSION = 1


class RecommenderNotPublishedError(FileNotFoundError):
    """Nothing published yet at the given place (the learning job has not run)."""


@dataclass
class PublishedRecommender:
    """A loaded version: the memory to recommend from, its index, state and text columns."""

    version: str
    model: str
    memory: AttemptMemory
    index: VectorIndex | None
    state: RecommenderState
    attempt_ids: np.ndarray
    issue_types: list[str]
    issue_type_codes: np.ndarray
    text: np.ndarray
    text_offsets: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def message(self, row: int) -> str:
        return _unpack(self.text, self.text_offsets, 2 * row)

    def file_path(self, row: int) -> str:
        return _unpack(self.text, self.text_offsets, 2 * row + 1)

    def issue_type(self, row: int) -> str:
        return self.issue_types[int(self.issue_type_codes[row])]


def _pack(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    if encoded:
        offsets[1:] = np.cumsum([len(b) for b in encoded])
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8) if encoded else np.zeros(0, np.uint8)
    return blob, offsets


def _unpack(blob: np.ndarray, offsets: np.ndarray, i: int) -> str:
    return bytes(blob[int(offsets[i]) : int(offsets[i + 1])]).decode("utf-8")


def _codes(values: Sequence[str]) -> tuple[list[str], np.ndarray]:
    names, codes = np.unique(np.asarray(values, dtype=object), return_inverse=True)
    return [str(n) for n in names.tolist()], codes.astype(np.int32)


def write_version(
    folder: Path,
    *,
    vectors: np.ndarray,
    attempt_ids: Sequence[int],
    issue_types: Sequence[str],
    agent_strategies: Sequence[str],
    success: Sequence[bool],
    timestamps: Sequence[float],
    messages: Sequence[str],
    file_paths: Sequence[str],
    state_json: str,
    model: str,
) -> dict[str, Any]:
    """Write one complete version folder (rows must already be in time order)."""
    n = len(attempt_ids)
    for name, col in (
        ("issue_types", issue_types),
        ("agent_strategies", agent_strategies),
        ("success", success),
        ("timestamps", timestamps),
        ("messages", messages),
        ("file_paths", file_paths),
    ):
        if len(col) != n:
            raise ValueError(f"{name}: {len(col)} values for {n} attempts")
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape[0] != n:
        raise ValueError(f"vectors: {vectors.shape[0]} rows for {n} attempts")
    folder.mkdir(parents=True)
    if n:
        VectorIndex.build(vectors).save(folder / "index")
    type_names, type_codes = _codes(list(issue_types))
    cand_names, cand_codes = _codes(list(agent_strategies))
    np.savez(
        folder / "columns.npz",
        attempt_ids=np.asarray(attempt_ids, dtype=np.int64),
        success=np.asarray(success, dtype=bool),
        timestamps=np.asarray(timestamps, dtype=np.float64),
        issue_type_codes=type_codes,
        candidate_codes=cand_codes,
    )
    interleaved = [s for pair in zip(messages, file_paths, strict=True) for s in pair]
    blob, offsets = _pack(interleaved)
    np.save(folder / "text.npy", blob)
    np.save(folder / "text_offsets.npy", offsets)
    (folder / "state.json").write_text(state_json, encoding="utf-8")
    meta = {
        "format": FORMAT_VERSION,
        "rows": n,
        "dim": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
        "model": model,
        "issue_types": type_names,
        "agent_strategies": cand_names,
        "published_at": datetime.now(UTC).isoformat(),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta


def publish(root: Path, min_age_seconds: float = 300.0, **columns: Any) -> str:
    """Write a new version under ``root`` and switch the pointer to it atomically."""
    return publish_version(
        root,
        lambda folder, _version: write_version(folder, **columns),
        min_age_seconds=min_age_seconds,
    )


def current_version(root: Path) -> str:
    """The version the pointer names; raises ``RecommenderNotPublishedError`` if none."""
    return versioned.current_version(
        root,
        what="recommender",
        hint="run the memory_learn job (symbiotic run) after recording fix attempts",
        error=RecommenderNotPublishedError,
    )


def load_version(folder: Path, version: str = "") -> PublishedRecommender:
    """Load one version folder; vectors are memory-mapped, the memory is built from columns."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{folder}: unsupported recommender format {meta.get('format')!r}")
    state_doc = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    state = RecommenderState.from_json(json.dumps(state_doc["state"]))
    with np.load(folder / "columns.npz") as cols:
        attempt_ids = cols["attempt_ids"]
        success = cols["success"]
        timestamps = cols["timestamps"]
        type_codes = cols["issue_type_codes"]
        cand_codes = cols["candidate_codes"]
    issue_types: list[str] = list(meta["issue_types"])
    candidates: list[str] = list(meta["agent_strategies"])
    index: VectorIndex | None = None
    dim = int(meta.get("dim") or 384)
    if int(meta["rows"]):
        index = load_index(folder / "index")  # rows in row order, memory-mapped (no copy)
        vectors = index.vectors
    else:
        vectors = np.zeros((0, dim), dtype=np.float32)
    memory = AttemptMemory.from_codes(  # codes as stored: no per-row strings at open
        vectors,
        issue_types,
        type_codes,
        candidates,
        cand_codes,
        success,
        timestamps,
        half_life_days=state.config.half_life_days,
    )
    return PublishedRecommender(
        version=version or folder.name,
        model=str(meta["model"]),
        memory=memory,
        index=index,
        state=state,
        attempt_ids=attempt_ids,
        issue_types=issue_types,
        issue_type_codes=type_codes,
        text=np.load(folder / "text.npy", mmap_mode="r"),
        text_offsets=np.load(folder / "text_offsets.npy", mmap_mode="r"),
        meta={**meta, **{k: v for k, v in state_doc.items() if k != "state"}},
    )


def load_published(root: Path) -> PublishedRecommender:
    """Load the version the pointer names (again, if it was swapped and pruned meanwhile)."""
    for attempt in range(3):
        version = current_version(root)
        try:
            return load_version(root / "versions" / version, version)
        except FileNotFoundError:
            if attempt == 2 or current_version(root) == version:
                raise
    raise AssertionError("unreachable")
