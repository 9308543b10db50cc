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

With ``--clicks-replay`` it evaluates the click memory (``search/clicks.py``)
instead, on a replayed click log: in time order (merge order) every PR title is
asked once, and later re-asked ``--reasks`` times as paraphrases (lower-cased,
a word dropped, words reordered, "where did we ..." added, words swapped for
synonyms from a small table) at random later points. The log's clicks come from
the unlearned ranker with position bias: the first relevant commit in the top 10
at rank r is clicked with probability 0.9 * 0.75**(r - 1), nothing beyond rank
10. The log is then replayed: each search is ranked by the unlearned ranker and
by the unlearned ranker plus the click memory learned from the clicks *before*
it, and MRR@10 (against the true relevant commits, not the clicks) is reported
separately for searches with at least one similar earlier clicked search and for
those with none. Threshold and strength are chosen on the first half of the log
(in time) and reported on the second half, and the defaults on the whole log.

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
from datetime import UTC, datetime, timedelta
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
    parser.add_argument("--clicks-replay", action="store_true",
                        help="evaluate the click memory on a replayed, simulated click log")  # fmt: skip
    parser.add_argument("--reasks", type=int, default=2, help="paraphrased re-asks per query")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from symbiotic_assets.core.config import RepositorySpec, slugify
    from symbiotic_assets.core.embedding import IssueEmbedder
    from symbiotic_assets.core.warehouse import connect
    from symbiotic_assets.events.store import MemoryStore, list_events
    from symbiotic_assets.git.extract import refresh_repository
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
    if args.clicks_replay:
        return clicks_replay(index, embedder, queries, args.reasks, repo_path.name)
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


# --------------------------------------------------------------------------- click replay
SYNONYMS = {
    "fix": "repair", "fixes": "repairs", "fixed": "repaired", "add": "introduce",
    "added": "introduced", "adds": "introduces", "remove": "drop", "removed": "dropped",
    "removes": "drops", "update": "bump", "updated": "bumped", "updates": "bumps",
    "support": "handle", "docs": "documentation", "documentation": "docs",
    "error": "exception", "errors": "exceptions", "test": "tests", "tests": "test cases",
    "use": "switch to", "allow": "permit", "change": "modify", "improve": "enhance",
    "bug": "issue", "typo": "spelling mistake", "handle": "deal with", "check": "verify",
}  # fmt: skip


def paraphrase(title: str, rng: np.random.Generator) -> str:
    """A re-ask of ``title``: lower-cased, then one or two random edits."""
    words = title.lower().replace(":", " ").split()
    edits = rng.choice(["drop", "reorder", "where", "synonym"], size=2, replace=False)
    for edit in edits:
        if edit == "drop" and len(words) > 3:
            del words[int(rng.integers(len(words)))]
        elif edit == "reorder" and len(words) > 2:
            i = int(rng.integers(len(words) - 1))
            words[i], words[i + 1] = words[i + 1], words[i]
        elif edit == "where":
            words = ["where", "did", "we", *words]
        elif edit == "synonym":
            spots = [i for i, w in enumerate(words) if w in SYNONYMS]
            for i in spots[:2]:
                words[i] = SYNONYMS[words[i]]
    return " ".join(words)


@dataclass
class LogEvent:
    time: float
    query: int  # index into the PR queries
    text: str
    reask: bool


def clicks_replay(index, embedder, queries: list[Query], reasks: int, name: str) -> int:  # type: ignore[no-untyped-def]  # fmt: skip
    from symbiotic_assets.search.clicks import (
        DEFAULT_STRENGTH,
        DEFAULT_THRESHOLD,
        ClickRecord,
        learn_click_model,
    )
    from symbiotic_assets.search.text import parse_query

    rng = np.random.default_rng(7)
    n = len(queries)
    log: list[LogEvent] = []
    for i, q in enumerate(queries):
        log.append(LogEvent(float(i), i, q.title, False))
        for _ in range(reasks):
            later = i + float(rng.exponential(n / 4)) + 0.5
            log.append(LogEvent(later, i, paraphrase(q.title, rng), True))
    log.sort(key=lambda e: (e.time, e.query))
    t = time.perf_counter()
    vecs = embedder.embed_many([e.text for e in log])
    # keyed the way learn_click_model asks: whitespace-normalised query text
    vec_of = {" ".join(e.text.split()): v for e, v in zip(log, vecs, strict=True)}
    parsed = [parse_query(e.text) for e in log]
    base = [[h.doc for h in index.rank(parsed[j], vecs[j], 10, clicks=False)]
            for j in range(len(log))]  # fmt: skip
    # The click log, recorded from the unlearned ranker with position bias.
    records: list[ClickRecord | None] = []
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for j, e in enumerate(log):
        rel = queries[e.query].relevant
        first = next((r for r, d in enumerate(base[j]) if d in rel), None)
        if first is not None and rng.random() < 0.9 * 0.75**first:
            shown = [index.hash_of(d) for d in base[j]]
            records.append(ClickRecord(e.text, t0 + timedelta(hours=e.time), [shown[first]],
                                       shown[:first]))  # fmt: skip
        else:
            records.append(None)
    prep = time.perf_counter() - t

    def replay(lo: int, hi: int, threshold: float, strength: float, measure_all: bool = True) -> list[tuple[int, float, float]]:  # fmt: skip
        """(similar?, rr unlearned, rr learned) for log[lo:hi], learning from all clicks before."""
        out = []
        for j in range(lo, hi):
            past = [r for r in records[:j] if r is not None]
            model = learn_click_model(past, lambda qs: np.stack([vec_of[q] for q in qs]),
                                      threshold=threshold, strength=strength)  # fmt: skip
            similar = len(model.similar(vecs[j])[0]) > 0
            rel = queries[log[j].query].relevant
            rr0 = mrr_recall(base[j], rel)[0]
            if similar or measure_all:
                learned = [h.doc for h in index.rank(parsed[j], vecs[j], 10, clicks=model)]
                rr1 = mrr_recall(learned, rel)[0]
            else:
                rr1 = rr0  # tuning only: without a similar past query nothing changes (tested)
            out.append((int(similar), rr0, rr1))
        return out

    def rows_of(label: str, res: list[tuple[int, float, float]]) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        for gname, g in (("with a similar earlier click", 1), ("no similar earlier click", 0)):
            sel = [r for r in res if r[0] == g]
            if sel:
                mrr0 = np.mean([r[1] for r in sel])
                mrr1 = np.mean([r[2] for r in sel])
                rows.append((label, gname, str(len(sel)), f"{mrr0:.3f}", f"{mrr1:.3f}"))
        mrr0 = np.mean([r[1] for r in res])
        mrr1 = np.mean([r[2] for r in res])
        rows.append((label, "all", str(len(res)), f"{mrr0:.3f}", f"{mrr1:.3f}"))
        return rows

    t = time.perf_counter()
    half = len(log) // 2
    grid = [(th, st) for th in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85) for st in (1.0, 2.0, 3.0, 4.0)]
    tuned = []
    for th, st in grid:
        res = replay(0, half, th, st, measure_all=False)
        tuned.append((np.mean([r[2] for r in res]), -th, -st))
    best = max(tuned)
    th_best, st_best = -best[1], -best[2]
    second = replay(half, len(log), th_best, st_best)
    whole = replay(0, len(log), DEFAULT_THRESHOLD, DEFAULT_STRENGTH)
    replay_s = time.perf_counter() - t
    n_clicks = sum(r is not None for r in records)
    print(f"# {name}: click replay over {len(log)} searches ({n} PR titles + {n * reasks} "
          f"paraphrased re-asks), {n_clicks} clicked; prep {prep:.1f}s, replay {replay_s:.1f}s")  # fmt: skip
    print(f"tuned on the first {half} searches: threshold {th_best}, strength {st_best}\n")
    rows = rows_of(f"second half, tuned ({th_best}, {st_best})", second)
    rows += rows_of(f"whole log, defaults ({DEFAULT_THRESHOLD}, {DEFAULT_STRENGTH})", whole)
    print(_table(rows, ("replay", "searches", "n", "MRR@10 unlearned", "MRR@10 learned")))
    examples = [(log[j].text, queries[log[j].query].title) for j in range(len(log)) if log[j].reask]
    print("\nexample re-asks: " + "; ".join(f"{a!r} (of {b!r})" for a, b in examples[:3]))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
