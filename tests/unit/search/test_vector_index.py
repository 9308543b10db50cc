"""core/vectors.py: the one faiss index of search and the recommender, on real files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from symbiotic_assets.core.vectors import (
    VectorIndex,
    exact_top,
    load_index,
    one_thread,
    recall_at_k,
    write_streamed,
)


def clustered(n: int, dim: int = 48, centres: int = 80, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    rows = c[rng.integers(0, centres, n)] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return clustered(30_000)


@pytest.fixture(scope="module")
def queries(rows: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(9)
    q = rows[rng.integers(0, len(rows), 60)] + 0.1 * rng.standard_normal((60, rows.shape[1]))
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def test_ann_recall_at_the_depths_production_uses(rows, queries) -> None:
    ann = VectorIndex.build(rows, approximate_above=10_000)
    assert ann.kind == "ivf-pq4fs" and ann.ann.ntotal == len(rows)
    assert recall_at_k(ann, rows, queries, k=10) >= 0.97
    assert recall_at_k(ann, rows, queries, k=64) >= 0.95  # the recommender's neighbours
    assert recall_at_k(ann, rows, queries, k=100) >= 0.95  # the ranker's candidates
    ids, sims = ann.search(queries[0], 10)
    # similarities are exact cosines of the returned rows, best first
    assert np.allclose(sims, rows[ids] @ queries[0], atol=1e-5)
    assert np.all(np.diff(sims) <= 0)


def test_filter_returns_only_allowed_rows_and_matches_exact(rows, queries) -> None:
    ann = VectorIndex.build(rows, approximate_above=10_000)
    repo = np.random.default_rng(3).integers(0, 4, len(rows))
    allowed = repo == 2  # a quarter: answered by faiss with a bitmap, not exactly
    assert allowed.sum() > 5_000
    for q in queries[:20]:
        ids, _ = ann.search(q, 10, allowed)
        assert len(ids) == 10 and allowed[ids].all()
    assert recall_at_k(ann, rows, queries, k=10, allowed=allowed) >= 0.95
    tiny = np.zeros(len(rows), dtype=bool)
    tiny[[5, 17, 29_999]] = True  # selective: answered exactly over the allowed rows
    ids, _ = ann.search(queries[0], 10, tiny)
    assert sorted(ids.tolist()) == [5, 17, 29_999]
    assert len(ann.search(queries[0], 10, np.zeros(len(rows), dtype=bool))[0]) == 0


def test_save_opens_memory_mapped_and_answers_the_same(rows, queries, tmp_path) -> None:
    ann = VectorIndex.build(rows, approximate_above=10_000)
    folder = ann.save(tmp_path / "idx")
    opened = load_index(folder)
    # a plain view of the map (no copy): its base is the np.memmap
    assert isinstance(opened.vectors.base, np.memmap) and not opened.vectors.flags.owndata
    for q in queries[:10]:
        a, sa = ann.search(q, 20)
        b, sb = opened.search(q, 20)
        assert np.array_equal(a, b) and np.allclose(sa, sb)


def test_streamed_write_in_any_chunk_order_equals_a_whole_build(rows, tmp_path) -> None:
    order = np.random.default_rng(1).permutation(len(rows))
    chunks = [(ids, rows[ids]) for ids in np.array_split(order, 7)]
    meta = write_streamed(
        tmp_path / "s", chunks, len(rows), rows.shape[1], approximate_above=10_000
    )
    assert meta["kind"] == "ivf-pq4fs" and meta["rows"] == len(rows)
    opened = load_index(tmp_path / "s")
    assert np.array_equal(np.asarray(opened.vectors), rows)
    assert recall_at_k(opened, rows, rows[:30], k=10) >= 0.97
    with pytest.raises(ValueError, match="never arrived"):
        write_streamed(tmp_path / "t", chunks[:-1], len(rows), rows.shape[1])
    with pytest.raises(ValueError, match="repeated"):
        write_streamed(tmp_path / "u", chunks + chunks[:1], len(rows), rows.shape[1])


def test_small_sets_are_exact_and_errors_name_the_input(tmp_path) -> None:
    small = clustered(500)
    idx = VectorIndex.build(small)
    assert idx.kind == "exact"
    assert np.array_equal(idx.search(small[3], 5)[0], exact_top(small, small[3], 5)[0])
    with pytest.raises(ValueError, match=r"vectors\[\d+\]: norm"):
        VectorIndex.build(small * 3)
    with pytest.raises(ValueError, match="query: 7 dimensions"):
        idx.search(np.ones(7, dtype=np.float32), 3)
    with pytest.raises(FileNotFoundError, match="not a saved vector index"):
        load_index(tmp_path)


def old_exact(folder: Path, rows: np.ndarray) -> None:
    folder.mkdir(parents=True)
    np.save(folder / "vectors.npy", rows)
    meta = {"kind": "exact", "rows": len(rows), "dim": rows.shape[1]}
    (folder / "index.json").write_text(json.dumps(meta))


def old_ivf(folder: Path, rows: np.ndarray) -> None:
    """The previous IVFIndex layout: rows grouped by list, ``ids`` maps them back."""
    folder.mkdir(parents=True)
    lists = np.argmax(rows @ rows[:8].T, axis=1)
    order = np.argsort(lists, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(lists, minlength=8))])
    np.save(folder / "vectors.npy", rows[order])
    np.save(folder / "ids.npy", order.astype(np.int64))
    np.save(folder / "centroids.npy", rows[:8])
    np.save(folder / "offsets.npy", offsets.astype(np.int64))
    meta = {"kind": "ivf", "rows": len(rows), "dim": rows.shape[1], "lists": 8, "n_probe": 3,
            "max_scan": 20000}  # fmt: skip
    (folder / "index.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("writer", [old_exact, old_ivf])
def test_folders_of_the_previous_format_still_load(writer, tmp_path) -> None:
    rows = clustered(2_000, seed=4)
    writer(tmp_path / "old", rows)
    opened = load_index(tmp_path / "old")
    assert np.array_equal(np.asarray(opened.vectors), rows)  # row order restored
    q = rows[11]
    assert np.array_equal(opened.search(q, 10)[0], exact_top(rows, q, 10)[0])


def test_queries_run_on_one_thread_and_builds_get_them_all_back() -> None:
    import faiss
    from threadpoolctl import threadpool_info

    from symbiotic_assets.core.vectors import all_threads

    def blas() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    with one_thread():
        assert faiss.omp_get_max_threads() == 1 and blas() <= {1}
    with one_thread():  # kept between queries: no per-query cost
        assert faiss.omp_get_max_threads() == 1
    with all_threads():
        assert faiss.omp_get_max_threads() == max(1, os.cpu_count() or 1)
    with one_thread():
        assert faiss.omp_get_max_threads() == 1


def test_a_streamed_build_reuses_the_previous_trained_lists(rows, tmp_path) -> None:
    import faiss

    chunks = [(np.arange(len(rows)), rows)]
    write_streamed(tmp_path / "v1", chunks, len(rows), rows.shape[1], approximate_above=10_000)
    extra = rows[:2_000] + 0.05 * np.random.default_rng(2).standard_normal((2_000, rows.shape[1]))
    extra = (extra / np.linalg.norm(extra, axis=1, keepdims=True)).astype(np.float32)
    more = np.concatenate([rows, extra])  # new commits like the old ones
    trained = tmp_path / "v1" / "trained.faiss"
    write_streamed(tmp_path / "v2", [(np.arange(len(more)), more)], len(more), more.shape[1],
                   approximate_above=10_000, trained=trained)  # fmt: skip

    def centroids(folder: Path) -> np.ndarray:
        index = faiss.read_index(str(folder / "trained.faiss"))
        quantizer: Any = faiss.downcast_index(faiss.extract_index_ivf(index).quantizer)
        return faiss.rev_swig_ptr(quantizer.get_xb(), quantizer.ntotal * quantizer.d).copy()

    assert np.array_equal(centroids(tmp_path / "v1"), centroids(tmp_path / "v2"))
    opened = load_index(tmp_path / "v2")
    assert len(opened) == len(more) and opened.ann.ntotal == len(more)
    assert recall_at_k(opened, more, more[-30:], k=10) >= 0.97


def test_a_folder_with_the_previous_8bit_codes_still_loads_and_the_next_build_retrains(
    rows, queries, tmp_path
) -> None:
    """Indexes published with 8-bit scalar codes (``ivf-sq8``) keep answering; a streamed
    build handed their ``trained.faiss`` trains fast-scan lists instead of reusing them."""
    import faiss

    quantizer = faiss.IndexFlatIP(rows.shape[1])
    old = faiss.IndexIVFScalarQuantizer(
        quantizer, rows.shape[1], 64, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    old.train(rows[:10_000])
    folder = tmp_path / "old"
    faiss.write_index(old, str(tmp_path / "trained.faiss"))
    old.add(rows)
    VectorIndex(rows, old, nprobe=16).save(folder)
    meta = json.loads((folder / "index.json").read_text())
    assert meta["kind"] == "ivf-sq8"
    opened = load_index(folder)
    assert opened.kind == "ivf-sq8"
    assert recall_at_k(opened, rows, queries, k=10) >= 0.95
    chunks = [(ids, rows[ids]) for ids in np.array_split(np.arange(len(rows)), 3)]
    meta = write_streamed(
        tmp_path / "new",
        chunks,
        len(rows),
        rows.shape[1],
        approximate_above=10_000,
        n_lists=64,
        trained=tmp_path / "trained.faiss",
    )
    assert meta["kind"] == "ivf-pq4fs" and load_index(tmp_path / "new").kind == "ivf-pq4fs"


def test_odd_dimensions_fall_back_to_8bit_codes() -> None:
    odd = clustered(12_000, dim=33)
    ann = VectorIndex.build(odd, approximate_above=10_000)
    assert ann.kind == "ivf-sq8"
    assert recall_at_k(ann, odd, odd[:20], k=10) >= 0.95


def test_vectors_cross_duckdb_as_one_arrow_buffer_and_come_back_exactly(tmp_path) -> None:
    """``vector_array`` / ``vectors_of``: FLOAT[dim] in and out of a real DuckDB file, also
    from sliced and multi-chunk Arrow columns (whose value buffers start elsewhere)."""
    import duckdb
    import pyarrow as pa

    from symbiotic_assets.core.vectors import vector_array, vectors_of

    rows = clustered(3_000, dim=16)
    con = duckdb.connect(str(tmp_path / "v.duckdb"))
    con.execute("CREATE TABLE t (i INTEGER, v FLOAT[16])")
    con.register("new_rows", pa.table({"i": np.arange(len(rows)), "v": vector_array(rows)}))
    con.execute("INSERT INTO t SELECT i, v FROM new_rows")
    back = con.execute("SELECT v FROM t ORDER BY i").fetch_arrow_table().column("v")
    assert np.array_equal(vectors_of(back, 16), rows)
    sliced = vector_array(rows).slice(1_000, 5)
    assert np.array_equal(vectors_of(sliced, 16), rows[1_000:1_005])
    chunked = pa.chunked_array([vector_array(rows[:7]).slice(2), vector_array(rows[7:9])])
    assert np.array_equal(vectors_of(chunked, 16), rows[2:9])
    with pytest.raises(ValueError, match="shape"):
        vector_array(rows[0])


def test_a_filter_multiplies_the_probes_by_its_share_at_most_four_times(
    rows, queries, monkeypatch
) -> None:
    """Probing every list for a small filter tripled the time at 1M rows for no recall:
    the growth stops at ``FILTER_PROBES_AT_MOST``, and recall holds at 5% allowed."""
    import symbiotic_assets.core.vectors as vectors

    ann = VectorIndex.build(rows, approximate_above=10_000)
    base = ann.nprobe
    assert ann.probes_for(len(rows)) == base
    assert ann.probes_for(len(rows) // 2) == min(ann.n_lists, 2 * base)
    assert ann.probes_for(len(rows) // 20) == min(ann.n_lists, 4 * base)
    monkeypatch.setattr(vectors, "EXACT_BELOW_ALLOWED", 100)  # answer a small filter by the ANN
    allowed = np.random.default_rng(5).random(len(rows)) < 0.05
    for q in queries[:10]:
        ids, _ = ann.search(q, 10, allowed)
        assert allowed[ids].all()
    assert recall_at_k(ann, rows, queries, k=10, allowed=allowed) >= 0.9
