"""Retrieval evaluation on real history: pull-request titles as queries, time-split.

``make eval-search REPO=path`` runs it on any clone with GitHub-style PR merges
(``Merge pull request #N from ...`` with the title as the body's first line, or
squash merges ``Title (#N)``):

1. ``benchmarks/time_split.py`` writes a copy of the default branch's history in
   which the newest half of the PRs (the *test* PRs) lose their titles (merge
   messages keep ``#N`` and the branch, squash commits keep ``(#N)`` and their
   body; quotes of a test title elsewhere become ``...``). Hashes are mapped.
2. The copy goes through the product's pipeline: extraction
   (``refresh_repository``), embedding (``embed_repository``), the change-terms
   pass (``refresh_change_terms``), ``load_corpus`` + ``with_change_terms``, the
   ranker weights learned from the *older* PRs only (``learn_from_history``),
   ``SearchIndex.build`` + ``publish``, and queries through ``semantic_search``.
3. Every test PR title is a query; its relevant results are the commits the PR
   brought in. The same corpus also feeds three textbook baselines: ``bm25``
   (BM25 over commit messages, subject + body), ``minilm`` (exact cosine over the
   commit vectors) and ``rrf`` (reciprocal-rank fusion, k=60, of their top 100).

Queries are *trivial* when the title equals one of its commits' subjects (any
exact-match method finds them) and *non-trivial* otherwise; both are reported.
MRR@10 is the mean of 1/rank of the first relevant commit in the top 10 (0 if
none); recall@10 is the share of a query's relevant commits in the top 10.

``--dump-pairs FILE`` saves the training pairs (older PRs) so that cross-repository
default weights can be fitted on several repositories (``benchmarks/learn_defaults.py``).
With ``--clicks-replay`` it evaluates the click memory instead (below).

Click replay (``--clicks-replay``, on the unsplit history): in time order every PR
title is asked once, and later re-asked ``--reasks`` times as paraphrases
(lower-cased, a word dropped, words reordered, "where did we ..." added, words
swapped for synonyms from a small table) at random later points. The log's
clicks come from the unlearned ranker with position bias: the first relevant
commit in the top 10 at rank r is clicked with probability 0.9 * 0.75**(r - 1).
Each search is then ranked by the unlearned ranker and by the unlearned ranker
plus the click memory learned from the clicks *before* it. Threshold and
strength are chosen on the first half of the log and reported on the second.

Run: ``python -m benchmarks.search_eval PATH/TO/REPO [--limit N] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np


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


def _corpus_without_merges(corpus):  # type: ignore[no-untyped-def]
    from symbiotic_assets.search.index import CommitCorpus

    keep = np.flatnonzero(~corpus.is_merge)
    return CommitCorpus(
        hashes=[corpus.hashes[i] for i in keep],
        repositories=[corpus.repositories[i] for i in keep],
        authors=[corpus.authors[i] for i in keep],
        authored_at=corpus.authored_at[keep],
        is_merge=corpus.is_merge[keep],
        subjects=[corpus.subjects[i] for i in keep],
        texts=[corpus.texts[i] for i in keep],
        paths=[corpus.paths[i] for i in keep],
        vectors=corpus.vectors[keep],
    )


def _clicks_mode(args: argparse.Namespace) -> int:
    """The click-memory replay on the repository's whole (unsplit) history."""
    from symbiotic_assets.core.config import RepositorySpec, slugify
    from symbiotic_assets.core.embedding import IssueEmbedder
    from symbiotic_assets.core.warehouse import connect
    from symbiotic_assets.git.extract import refresh_repository
    from symbiotic_assets.search.commit_embeddings import embed_repository, load_corpus, model_key
    from symbiotic_assets.search.index import SearchIndex

    repo_path = args.repo.expanduser().resolve()
    name = slugify(repo_path.name)
    with tempfile.TemporaryDirectory(prefix="search-eval-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        db = str(work / "eval.duckdb")
        refresh_repository(db, RepositorySpec(name=name, path=repo_path))
        embedder = IssueEmbedder(cache_dir=os.environ.get("SYMBIOTIC_MODEL_CACHE") or None)
        with connect(db) as con:
            embed_repository(con, name, embedder)
            corpus = _corpus_without_merges(load_corpus(con, model_key(embedder), [name]))
        index = SearchIndex.build(corpus, model_key(embedder), ann_min_docs=10**9)
        doc_of = {index.hash_of(d): d for d in range(index.size)}
        subjects = [index.subject(d) for d in range(index.size)]
        with connect(db, read_only=True) as con:
            queries = _pr_queries(con, repo_path, name, doc_of, subjects)
        if args.limit is not None and len(queries) > args.limit:
            rng = np.random.default_rng(0)
            queries = [
                queries[i] for i in sorted(rng.choice(len(queries), args.limit, replace=False))
            ]
        if not queries:
            print(
                f"{repo_path.name}: no 'Merge pull request #N' merges with relevant commits found"
            )
            return 1
        return clicks_replay(index, embedder, queries, args.reasks, repo_path.name)


def rrf(rankings: Sequence[Sequence[int]], k: int = 60, n: int = 10) -> list[int]:
    """Reciprocal-rank fusion: sum of 1 / (k + rank) over the rankings, best first."""
    score: dict[int, float] = {}
    for ranking in rankings:
        for r, d in enumerate(ranking, start=1):
            score[d] = score.get(d, 0.0) + 1.0 / (k + r)
    return [d for d, _ in sorted(score.items(), key=lambda x: (-x[1], x[0]))][:n]


def _git_numstat_seconds(path: Path) -> float:
    t = time.perf_counter()
    subprocess.run(["git", "-C", str(path), "log", "--all", "--numstat", "--format=%H"],
                   stdout=subprocess.DEVNULL, check=True)  # fmt: skip
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path, help="a local clone with GitHub PR merges")
    parser.add_argument("--limit", type=int, default=None, help="evaluate at most N test queries")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the split copy and DuckDB here (must not hold an old split)")  # fmt: skip
    parser.add_argument("--test-share", type=float, default=0.5, help="newest share of PRs tested")
    parser.add_argument("--max-commits", type=int, default=None,
                        help="take queries only among the newest N first-parent commits")  # fmt: skip
    parser.add_argument("--no-history", action="store_true",
                        help="do not learn weights from the older PRs (defaults only)")  # fmt: skip
    parser.add_argument("--dump-pairs", type=Path, default=None,
                        help="save the older PRs' training pairs (.npy) for learn_defaults")  # fmt: skip
    parser.add_argument("--clicks-replay", action="store_true",
                        help="evaluate the click memory on a replayed, simulated click log")  # fmt: skip
    parser.add_argument("--reasks", type=int, default=2, help="paraphrased re-asks per query")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.clicks_replay:
        return _clicks_mode(args)

    from benchmarks.time_split import build_time_split
    from symbiotic_assets.core.config import RepositorySpec, slugify
    from symbiotic_assets.core.embedding import IssueEmbedder
    from symbiotic_assets.core.warehouse import connect
    from symbiotic_assets.git.extract import refresh_repository
    from symbiotic_assets.git.repository import GitRepository
    from symbiotic_assets.search.api import semantic_search
    from symbiotic_assets.search.change_terms import refresh_change_terms, with_change_terms
    from symbiotic_assets.search.commit_embeddings import embed_repository, load_corpus, model_key
    from symbiotic_assets.search.index import SearchIndex, publish
    from symbiotic_assets.search.lexical import BM25Index
    from symbiotic_assets.search.ranker import HistoryQuery, RankerWeights, learn_from_history
    from symbiotic_assets.search.text import parse_query, tokenize

    repo_path = args.repo.expanduser().resolve()
    name = slugify(repo_path.name)
    tmp = tempfile.TemporaryDirectory(prefix="search-eval-")
    work = args.workdir or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t = time.perf_counter()
    split_path = work / "split.git"
    saved = work / "split.pickle"
    if split_path.exists() and saved.is_file():  # a --workdir reused: same split, same hashes
        split = pickle.loads(saved.read_bytes())
    else:
        split = build_time_split(repo_path, split_path, args.test_share, args.max_commits)
        saved.write_bytes(pickle.dumps(split))
    timings["split"] = time.perf_counter() - t
    db = str(work / "eval.duckdb")
    t = time.perf_counter()
    refresh_repository(db, RepositorySpec(name=name, path=split_path))
    timings["extract"] = time.perf_counter() - t
    embedder = IssueEmbedder(cache_dir=os.environ.get("SYMBIOTIC_MODEL_CACHE") or None)
    key = model_key(embedder)
    t = time.perf_counter()
    with connect(db) as con:
        embedded = embed_repository(con, name, embedder)
    timings["embed"] = time.perf_counter() - t
    numstat_s = _git_numstat_seconds(split_path)
    t = time.perf_counter()
    with connect(db) as con:
        change = refresh_change_terms(con, GitRepository.open(name, split_path), name)
    timings["change terms"] = time.perf_counter() - t
    with connect(db) as con:
        corpus = with_change_terms(con, load_corpus(con, key, [name]))
        messages = {
            h: f"{s or ''}\n{b or ''}"
            for h, s, b in con.execute(
                "SELECT hash, subject, body FROM git.commits WHERE repository = ? AND NOT is_merge",
                [name],
            ).fetchall()
        }
    t = time.perf_counter()
    base_index = SearchIndex.build(corpus, key)
    timings["index"] = time.perf_counter() - t

    def history(pulls: Sequence[object]) -> list[HistoryQuery]:
        return [HistoryQuery(p.title, frozenset(p.members)) for p in pulls]  # type: ignore[attr-defined]

    weights = RankerWeights()
    t = time.perf_counter()
    if not args.no_history:
        weights = learn_from_history(base_index, history(split.train), embedder.embed_many)
    timings["learn"] = time.perf_counter() - t
    if args.dump_pairs is not None:
        from symbiotic_assets.search.ranker import history_pair_matrix

        np.save(args.dump_pairs, history_pair_matrix(base_index, history(split.train),
                                                     embedder.embed_many))  # fmt: skip
    index = SearchIndex.build(corpus, key, weights=weights)
    root = work / "published"
    publish(index, root)

    # -- queries: the test PRs, relevant = their commits in the corpus --------------------
    docs = [i for i in range(len(corpus.hashes)) if not corpus.is_merge[i]]
    doc_hashes = [corpus.hashes[i] for i in docs]
    doc_of = {h: j for j, h in enumerate(doc_hashes)}
    queries: list[Query] = []
    for p in split.test:
        relevant = {doc_of[h] for h in p.members if h in doc_of}
        if not relevant:
            continue
        norm = " ".join(p.title.lower().split())
        subjects = (
            " ".join(messages[doc_hashes[d]].split("\n")[0].lower().split()) for d in relevant
        )
        trivial = not p.squash and any(s == norm for s in subjects)
        queries.append(Query(p.commit, p.title, relevant, trivial))
    if args.limit is not None and len(queries) > args.limit:
        rng = np.random.default_rng(0)
        queries = [queries[i] for i in sorted(rng.choice(len(queries), args.limit, replace=False))]
    if not queries:
        print(f"{repo_path.name}: no pull requests with commits found on {split.branch}")
        return 1

    # -- baselines on the same corpus -----------------------------------------------------
    bm25 = BM25Index.build([tokenize(messages.get(h, "")) for h in doc_hashes])
    vectors = np.asarray(corpus.vectors[docs], dtype=np.float32)
    qvecs = embedder.embed_many([" ".join(q.title.split()) for q in queries])

    def bm25_top(i: int, n: int = 10) -> list[int]:
        return [int(d) for d in bm25.top(tokenize(queries[i].title), n)[0]]

    def minilm_top(i: int, n: int = 10) -> list[int]:
        scores = vectors @ qvecs[i]
        top = np.argsort(-scores, kind="stable")[:n]
        return [int(d) for d in top]

    def ours(i: int) -> list[int]:
        hits = semantic_search(queries[i].title, k=10, index_root=root)
        return [doc_of[h.hash] for h in hits if h.hash in doc_of]

    not_merge = ~np.asarray(index.is_merge, dtype=bool)

    def ours_defaults(i: int) -> list[int]:
        hits = index.rank(parse_query(queries[i].title), qvecs[i], 10, mask=not_merge,
                          weights=RankerWeights(), clicks=False)  # fmt: skip
        return [doc_of[index.hash_of(h.doc)] for h in hits]

    methods: dict[str, Callable[[int], list[int]]] = {
        "bm25": bm25_top,
        "minilm": minilm_top,
        "rrf": lambda i: rrf([bm25_top(i, 100), minilm_top(i, 100)]),
        "ours, default weights": ours_defaults,
        "ours": ours,
    }
    t = time.perf_counter()
    scores = {m: [mrr_recall(f(i), q.relevant) for i, q in enumerate(queries)]
              for m, f in methods.items()}  # fmt: skip
    timings["rank"] = time.perf_counter() - t

    groups = {
        "non-trivial": [i for i, q in enumerate(queries) if not q.trivial],
        "all": list(range(len(queries))),
    }
    n_squash = sum(p.squash for p in split.test)
    print(f"# {repo_path.name}: {len(docs)} non-merge commits; {len(split.pulls)} PRs "
          f"({len(split.train)} older for learning, {len(split.test)} newest tested, "
          f"{n_squash} of them squash-merged); {len(queries)} queries "
          f"({len(groups['non-trivial'])} non-trivial); {embedded.model_calls} commits embedded")  # fmt: skip
    print(f"model {embedder.model_id}; ranker {weights.source} "
          f"({weights.stats.get('queries', 0)} training PRs, {weights.stats.get('pairs', 0)} pairs); "
          + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))  # fmt: skip
    rate = change.commits / max(timings["change terms"], 1e-9)
    print(f"change terms: {change.commits} commits in {timings['change terms']:.1f}s "
          f"({rate:.0f} commits/s; plain git log --all --numstat {numstat_s:.1f}s), "
          f"{change.groups} PR groups")  # fmt: skip
    rows: list[tuple[str, ...]] = []
    for gname, idx in groups.items():
        if not idx:
            continue
        best = max(np.mean([scores[m][i][0] for i in idx]) for m in ("bm25", "minilm", "rrf"))
        for m in methods:
            mrr = float(np.mean([scores[m][i][0] for i in idx]))
            rec = float(np.mean([scores[m][i][1] for i in idx]))
            delta = f"{mrr - best:+.3f}" if m == "ours" else ""
            rows.append((gname, m, str(len(idx)), f"{mrr:.3f}", f"{rec:.3f}", delta))
    print()
    print(_table(rows, ("queries", "method", "n", "MRR@10", "recall@10", "vs best baseline")))
    print("\nweights: " + ", ".join(f"{f} {v:.2f}" for f, v in weights.weights.items()))
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
