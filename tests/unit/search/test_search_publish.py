"""Publishing swaps versions atomically: readers see the old index or the new one, whole."""

from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest
from search_fixtures import make_corpus, unit

from symbiotic_assets.search.index import (
    KEEP_VERSIONS,
    IndexNotPublishedError,
    SearchIndex,
    load_published,
    publish,
)


def index_of(n: int, seed: int) -> SearchIndex:
    rng = np.random.default_rng(seed)
    rows = [
        {"hash": hashlib.sha1(f"{seed}-{i}".encode()).hexdigest(), "subject": f"commit {i} of {n}"}
        for i in range(n)
    ]
    return SearchIndex.build(make_corpus(rows, np.stack([unit(rng) for _ in rows])), "m@onnx")


def test_nothing_published_is_a_clear_error(tmp_path):
    with pytest.raises(IndexNotPublishedError, match="no search index published"):
        load_published(tmp_path / "search")


def test_readers_never_see_a_half_written_index(tmp_path):
    root = tmp_path / "search"
    publish(index_of(50, 0), root)
    errors: list[BaseException] = []
    sizes: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                idx = load_published(root)
                # every file of one version agrees with the others
                assert len(idx.hashes) == idx.size == len(idx.vectors) == idx.bm25.n_docs
                sizes.add(idx.size)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for r in readers:
        r.start()
    for i in range(6):
        publish(index_of(50 + 10 * (i + 1), i + 1), root)
    stop.set()
    for r in readers:
        r.join()
    assert not errors, errors[:3]
    assert sizes <= {50 + 10 * i for i in range(7)} and len(sizes) >= 2
    versions = [p for p in (root / "versions").iterdir() if not p.name.startswith(".")]
    assert len(versions) == 7  # none is old enough to be pruned yet
    assert not [p for p in (root / "versions").iterdir() if p.name.startswith(".staging")]
    assert load_published(root).size == 110


def test_old_versions_are_pruned_once_old_enough(tmp_path):
    root = tmp_path / "search"
    for i in range(KEEP_VERSIONS + 2):
        publish(index_of(5, i), root, min_age_seconds=0)
    versions = [p for p in (root / "versions").iterdir() if not p.name.startswith(".")]
    assert len(versions) == KEEP_VERSIONS
    assert load_published(root).version in {p.name for p in versions}
