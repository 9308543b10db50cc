"""``BM25Writer`` writes exactly the files ``BM25Index.build`` + ``save`` write.

The corpus is real text: the paragraphs of this project's own search and core
modules (identifiers, prose, numbers, empty paragraphs), tokenized by the index's
tokenizer. Runs of one token, a few dozen and all of them, and column ranges of
one posting up to all, cross every boundary the streamed writer has.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from symbiotic_assets.core.config import PROJECT_ROOT
from symbiotic_assets.search.bm25_stream import BM25Writer, NpyAppender
from symbiotic_assets.search.lexical import BM25Index
from symbiotic_assets.search.text import tokenize


def corpus() -> list[list[str]]:
    docs: list[list[str]] = []
    for folder in ("search", "core"):
        for path in sorted((PROJECT_ROOT / "symbiotic_assets" / folder).glob("*.py")):
            docs += [tokenize(p) for p in path.read_text(encoding="utf-8").split("\n\n")]
            docs.append([])  # a commit without any term
    return docs


DOCS = corpus()


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    ("run_postings", "chunk_postings", "batch"),
    [(10**9, 10**9, 10**9), (1, 10**9, 7), (97, 1000, 50), (5_000, 1, 1)],
)
def test_streamed_files_equal_the_in_memory_build(
    tmp_path: Path, run_postings: int, chunk_postings: int, batch: int
) -> None:
    assert len(DOCS) > 500 and any(not d for d in DOCS)
    built, streamed, scratch = tmp_path / "built", tmp_path / "streamed", tmp_path / "scratch"
    for folder in (built, streamed, scratch):
        folder.mkdir()
    BM25Index.build(DOCS).save(built)
    writer = BM25Writer(run_postings=run_postings, chunk_postings=chunk_postings, scratch=scratch)
    for s in range(0, len(DOCS), batch):
        writer.add(DOCS[s : s + batch])
    sizes = writer.finish(streamed)
    expected = files(built)
    assert files(streamed) == expected
    assert sizes == {"documents": len(DOCS), "terms": len(BM25Index.load(built).vocabulary)}
    assert list(scratch.iterdir()) == []  # the runs are gone
    loaded = BM25Index.load(streamed)
    assert loaded.top(["retry", "index", "publish"], 5)[0].tolist() == (
        BM25Index.build(DOCS).top_exhaustive(["retry", "index", "publish"], 5)[0].tolist()
    )


def test_empty_corpus_and_empty_documents(tmp_path: Path) -> None:
    for docs in ([], [[], []], [["only"]]):
        built, streamed = tmp_path / f"b{len(docs)}", tmp_path / f"s{len(docs)}"
        built.mkdir(), streamed.mkdir()
        BM25Index.build(docs).save(built)
        writer = BM25Writer(run_postings=1)
        writer.add(docs)
        writer.finish(streamed)
        assert files(streamed) == files(built), docs


def test_npy_appender_writes_what_np_save_writes(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for dtype in (np.int32, np.int64, np.float32, np.uint8, bool):
        whole = (rng.random(1000) * 1000).astype(dtype)
        for pieces in ([], [whole], np.array_split(whole, 7)):
            out = NpyAppender(tmp_path / "a.npy", dtype)
            for piece in pieces:
                out.append(piece)
            out.close()
            expected = io.BytesIO()
            np.save(expected, np.concatenate(pieces) if pieces else np.zeros(0, dtype))
            assert (tmp_path / "a.npy").read_bytes() == expected.getvalue(), (dtype, len(pieces))


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="k1=-1"):
        BM25Writer(k1=-1)
