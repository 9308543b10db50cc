"""Retrieval evaluation on real history: pull-request titles as queries.

For every GitHub merge commit "Merge pull request #N from ..." whose body's first
line is the PR title, the title is the query and the relevant documents are the
non-merge commits the PR brought in (``git rev-list --no-merges P2 ^P1``). The
corpus is every non-merge commit of the repository, read through our own
extraction (``refresh_repository``) into a temporary DuckDB and embedded by our
own asset code (``embed_repository``), so the evaluation exercises the real path.

Queries are split into *trivial* (the title equals the subject of one of the
relevant commits, so any exact-match method finds it) and the rest. Methods:

* ``bm25``: BM25 with the code-aware tokenizer, alone.
* ``minilm``: exact cosine over MiniLM vectors, alone.
* ``fused``: our hybrid ranker with the default weights.
* ``fused+learned``: the same, with weights learned from simulated clicks. Queries
  are split in two halves by a hash of the merge commit; on the *train* half a
  simulated user looks at the top 10 of the fused ranker and clicks the first
  relevant commit (cascade model), recorded through ``record_search`` /
  ``record_click`` in a real memory store; the learner reads them back. Learned
  and default weights are then compared on the *test* half (which got no clicks)
  and on the train-half queries where nothing was clicked.

MRR@10 is the mean of 1/rank of the first relevant commit in the top 10 (0 if
none); recall@10 is the share of a query's relevant commits found in the top 10.

Run: ``python -m benchmarks.search_eval PATH/TO/REPO [--limit N] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from symbiotic_assets.search.ranker import DEFAULT_WEIGHTS


@dataclass
class Query:
    merge: str
    title: str
    relevant: set[int]  # document ids
    trivial: bool


def _pr_queries(con, repo_path: Path, repository: str, doc_of: dict[str, int], subjects: list[str]) -> list[Query]:  # type: ignore[no-untyped-def]  # fmt: skip
    rows = con.execute(
        """
        SELECT hash, body, parent_hashes FROM git.commits
        WHERE repository = ? AND is_merge AND is_reachable AND parent_count = 2
          AND subject LIKE 'Merge pull request #%'
        ORDER BY authored_at, hash
        """,
        [repository],
    ).fetchall()
    queries: list[Query] = []
    for merge, body, parents in rows:
        lines = [ln.strip() for ln in (body or "").splitlines() if ln.strip()]
        if not lines:
            continue
        title = lines[0]
        out = subprocess.run(
            ["git", "-C", str(repo_path), "rev-list", "--no-merges", parents[1], f"^{parents[0]}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            continue
        relevant = {doc_of[h] for h in out.stdout.split() if h in doc_of}
        if not relevant:
            continue
        norm = " ".join(title.lower().split())
        trivial = any(" ".join(subjects[d].lower().split()) == norm for d in relevant)
        queries.append(Query(merge, title, relevant, trivial))
    return queries


def mrr_recall(ranked: Sequence[int], relevant: set[int], k: int = 10) -> tuple[float, float]:
    top = list(ranked)[:k]
    rr = next((1.0 / (i + 1) for i, d in enumerate(top) if d in relevant), 0.0)
    return rr, len(relevant.intersection(top)) / len(relevant)


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r: tuple[str, ...]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *[line(r) for r in rows]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path, help="a local clone with GitHub merge commits")
    parser.add_argument("--limit", type=int, default=None, help="evaluate at most N queries")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the DuckDB (extraction, vectors) here to reuse across runs")  # fmt: skip
    parser.add_argument("--l2", type=float, default=0.3, help="pull of the learner toward defaults")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from symbiotic_assets.config import RepositorySpec, slugify
    from symbiotic_assets.git.extract import refresh_repository
    from symbiotic_assets.memory.embedder import IssueEmbedder
    from symbiotic_assets.memory.store import MemoryStore, list_events
    from symbiotic_assets.search.api import record_click, record_search
    from symbiotic_assets.search.commit_embeddings import embed_repository, load_corpus, model_key
    from symbiotic_assets.search.index import CommitCorpus, SearchIndex
    from symbiotic_assets.search.ranker import (
        RankerWeights,
        features_for_logged,
        join_clicks,
        learn_weights,
    )
    from symbiotic_assets.search.text import parse_query, tokenize
    from symbiotic_assets.warehouse import connect

    repo_path = args.repo.expanduser().resolve()
    name = slugify(repo_path.name)
    tmp = tempfile.TemporaryDirectory(prefix="search-eval-")
    work = args.workdir or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    db = str(work / "eval.duckdb")
    timings: dict[str, float] = {}

    t = time.perf_counter()
    refresh_repository(db, RepositorySpec(name=name, path=repo_path))
    timings["extract"] = time.perf_counter() - t
    embedder = IssueEmbedder(cache_dir=os.environ.get("SYMBIOTIC_MODEL_CACHE") or None)
    t = time.perf_counter()
    with connect(db) as con:
        result = embed_repository(con, name, embedder)
        corpus_all = load_corpus(con, model_key(embedder), [name])
    timings["embed"] = time.perf_counter() - t
    keep = np.flatnonzero(~corpus_all.is_merge)
    corpus = CommitCorpus(
        hashes=[corpus_all.hashes[i] for i in keep],
        repositories=[corpus_all.repositories[i] for i in keep],
        authors=[corpus_all.authors[i] for i in keep],
        authored_at=corpus_all.authored_at[keep],
        is_merge=corpus_all.is_merge[keep],
        subjects=[corpus_all.subjects[i] for i in keep],
        texts=[corpus_all.texts[i] for i in keep],
        paths=[corpus_all.paths[i] for i in keep],
        vectors=corpus_all.vectors[keep],
    )
    t = time.perf_counter()
    index = SearchIndex.build(corpus, model_key(embedder), ann_min_docs=10**9)
    timings["index"] = time.perf_counter() - t
    doc_of = {index.hash_of(d): d for d in range(index.size)}
    subjects = [index.subject(d) for d in range(index.size)]
    with connect(db, read_only=True) as con:
        queries = _pr_queries(con, repo_path, name, doc_of, subjects)
    if args.limit is not None and len(queries) > args.limit:
        rng = np.random.default_rng(0)
        queries = [queries[i] for i in sorted(rng.choice(len(queries), args.limit, replace=False))]
    if not queries:
        print(f"{repo_path.name}: no 'Merge pull request #N' merges with relevant commits found")
        return 1
    qvecs = embedder.embed_many([q.title for q in queries])
    parsed = [parse_query(q.title) for q in queries]
    del tokenize

    def run(method: Callable[[int], list[int]]) -> list[tuple[float, float]]:
        return [mrr_recall(method(i), q.relevant) for i, q in enumerate(queries)]

    def bm25(i: int) -> list[int]:
        return index.bm25.top(parsed[i].terms, 10)[0].tolist()

    def minilm(i: int) -> list[int]:
        return index.semantic_top(qvecs[i], 10, exact=True)[0].tolist()

    def fused_with(weights: RankerWeights) -> Callable[[int], list[int]]:
        return lambda i: [h.doc for h in index.rank(parsed[i], qvecs[i], 10, weights=weights)]

    default = RankerWeights()
    t = time.perf_counter()
    scores = {"bm25": run(bm25), "minilm": run(minilm), "fused": run(fused_with(default))}
    timings["rank"] = time.perf_counter() - t

    # -- click-through learning on half of the queries -------------------------------
    half = [int(hashlib.sha256(q.merge.encode()).hexdigest(), 16) % 2 for q in queries]
    train = [i for i, h in enumerate(half) if h == 0]
    test = [i for i, h in enumerate(half) if h == 1]
    store_path = work / f"clicks-{os.getpid()}.sqlite"
    clicked_queries: set[int] = set()
    with MemoryStore(store_path) as store:
        for i in train:
            shown = fused_with(default)(i)
            shown_hashes = [index.hash_of(d) for d in shown]
            sid = record_search(queries[i].title, shown_hashes, search_id=f"eval-{i}", store=store)
            first = next((r for r, d in enumerate(shown) if d in queries[i].relevant), None)
            if first is not None:
                record_click(
                    queries[i].title, shown_hashes[first], first + 1, search_id=sid, store=store
                )
                clicked_queries.add(i)
        events_s = [e.parsed() for e in list_events("search", limit=None, store=store)]
        events_c = [e.parsed() for e in list_events("search_click", limit=None, store=store)]
    store_path.unlink(missing_ok=True)
    logged = join_clicks(events_s, events_c)
    t = time.perf_counter()
    clicked = features_for_logged(index, logged, lambda qs: embedder.embed_many(qs))
    learned = learn_weights(clicked, RankerWeights(), l2=args.l2)
    timings["learn"] = time.perf_counter() - t
    learned_scores = run(fused_with(learned))

    # -- report -----------------------------------------------------------------------
    groups = {
        "trivial": [i for i, q in enumerate(queries) if q.trivial],
        "non-trivial": [i for i, q in enumerate(queries) if not q.trivial],
    }
    print(f"# {repo_path.name}: {index.size} non-merge commits, {len(queries)} PR queries "
          f"({len(groups['trivial'])} trivial, {len(groups['non-trivial'])} non-trivial); "
          f"{result.model_calls} commits embedded this run")  # fmt: skip
    print(
        f"model {embedder.model_id}; timings "
        + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
    )
    rows: list[tuple[str, ...]] = []
    for gname, idx in groups.items():
        for m in ("bm25", "minilm", "fused"):
            if not idx:
                continue
            mrr = np.mean([scores[m][i][0] for i in idx])
            rec = np.mean([scores[m][i][1] for i in idx])
            rows.append((gname, m, str(len(idx)), f"{mrr:.3f}", f"{rec:.3f}"))
    print()
    print(_table(rows, ("queries", "method", "n", "MRR@10", "recall@10")))

    print("\n## click-through learning (trained on simulated clicks of the train half)")
    print(f"train half: {len(train)} queries, {len(clicked_queries)} with a click; "
          f"{learned.stats.get('pairs', 0)} preference pairs; pairs ordered "
          f"{learned.stats.get('pairs_ordered_before')} -> {learned.stats.get('pairs_ordered_after')}")  # fmt: skip
    rows = []
    no_click_train = [i for i in train if i not in clicked_queries]
    sets = {
        "test half (no clicks), all": test,
        "test half, non-trivial": [i for i in test if not queries[i].trivial],
        "test half, trivial": [i for i in test if queries[i].trivial],
        "train half, queries without a click": no_click_train,
    }
    for sname, idx in sets.items():
        if not idx:
            continue
        d_mrr = np.mean([scores["fused"][i][0] for i in idx])
        l_mrr = np.mean([learned_scores[i][0] for i in idx])
        d_rec = np.mean([scores["fused"][i][1] for i in idx])
        l_rec = np.mean([learned_scores[i][1] for i in idx])
        rows.append(
            (sname, str(len(idx)), f"{d_mrr:.3f}", f"{l_mrr:.3f}", f"{d_rec:.3f}", f"{l_rec:.3f}")
        )
    print(_table(rows, ("queries", "n", "MRR fused", "MRR learned", "R@10 fused", "R@10 learned")))
    print("\nweights (default -> learned): " + ", ".join(
        f"{f} {DEFAULT_WEIGHTS[f]:g}->{learned.weights[f]:.2f}" for f in DEFAULT_WEIGHTS))  # fmt: skip
    sys.stdout.flush()
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
