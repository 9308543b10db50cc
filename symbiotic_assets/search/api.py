"""Search commits in plain language, from the published serving index only.

``semantic_search`` never opens the warehouse: it reads the files that the
``search/serving_index`` asset published (``$SYMBIOTIC_HOME/published/search``),
so it keeps working while a materialization holds the warehouse's write lock.
The index is loaded once per process and reloaded when the pointer names a new
version. The query is embedded with the same model variant as the stored
vectors (the index records it).

``record_search`` and ``record_click`` put what people did into the memory store;
the ``search/ranker_weights`` asset learns from them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from symbiotic_assets.core.publish import PublishedCache
from symbiotic_assets.search.index import SearchIndex, current_version, load_published
from symbiotic_assets.search.text import parse_query

if TYPE_CHECKING:  # pragma: no cover
    from symbiotic_assets.core.embedding import IssueEmbedder
    from symbiotic_assets.events.store import StoreLike
    from symbiotic_assets.search.change_terms import PublishedGroups
    from symbiotic_assets.search.index import Hit

_indexes: PublishedCache[SearchIndex] = PublishedCache(current_version, load_published)


@dataclass(frozen=True)
class SearchResult:
    """One commit found, and why."""

    hash: str
    repository: str
    author: str
    date: str  # ISO 8601, UTC
    subject: str
    score: float
    why: str
    rank: int
    is_merge: bool
    paths: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ChangeResult:
    """One change found: a pull request (or a lone commit) with its matching commits.

    ``title`` is the PR title where the history records it (GitHub merge message or
    squash subject), else the subject of its best commit.
    """

    rank: int
    repository: str
    title: str
    pr_number: int | None
    branch: str | None
    group_hash: str | None  # the merge or squash commit; None for a commit outside any PR
    score: float  # of its best commit
    commits: list[SearchResult]  # the matching commits, best first
    paths: list[str]  # touched by the matching commits, at most 20

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_groups: PublishedCache[PublishedGroups] | None = None


def _load_groups(root: Path) -> PublishedGroups | None:
    """The published change groups next to the index, or None when none were published."""
    global _groups
    from symbiotic_assets.core.publish import NotPublishedError
    from symbiotic_assets.search.change_terms import _current, load_groups

    if _groups is None:
        _groups = PublishedCache(_current, load_groups)
    try:
        return _groups.get(root)
    except NotPublishedError:
        return None


def group_by_change(
    results: Sequence[SearchResult], groups: PublishedGroups | None, k: int
) -> list[ChangeResult]:
    """Fold ranked commits into changes, in the order of each change's best commit.

    Every commit appears once, in the change that brought it in (a commit outside
    any known PR is a change of its own); at most ``k`` changes are returned.
    """
    order: list[tuple[str, str]] = []
    members: dict[tuple[str, str], list[SearchResult]] = {}
    info: dict[tuple[str, str], Any] = {}
    for r in results:
        g = groups.group_of(r.repository, r.hash) if groups is not None else None
        key = (r.repository, g.group_hash if g is not None else r.hash)
        if key not in members:
            if len(order) == k:
                continue
            order.append(key)
            members[key] = []
            info[key] = g
        members[key].append(r)
    out: list[ChangeResult] = []
    for rank, key in enumerate(order, start=1):
        commits = members[key]
        g = info[key]
        paths = list(dict.fromkeys(p for c in commits for p in c.paths))[:20]
        out.append(
            ChangeResult(
                rank=rank,
                repository=key[0],
                title=(g.title if g is not None and g.title else commits[0].subject),
                pr_number=g.pr_number if g is not None else None,
                branch=g.branch if g is not None else None,
                group_hash=g.group_hash if g is not None else None,
                score=commits[0].score,
                commits=[
                    SearchResult(**{**c.to_dict(), "rank": i})
                    for i, c in enumerate(commits, start=1)
                ],
                paths=paths,
            )
        )
    return out


def grouped_pool(k: int) -> int:
    """How many ranked commits to fold into ``k`` changes: a PR's commits rank close together."""
    return min(1000, max(5 * k, 50))


def changes_of(
    results: Sequence[SearchResult], k: int, *, index_root: Path | None = None
) -> list[ChangeResult]:
    """``results`` folded into at most ``k`` changes, with the groups published next to the index."""
    root = index_root or default_index_root()
    return group_by_change(results, _load_groups(root.parent / "search-changes"), k)


def default_index_root() -> Path:
    from symbiotic_assets.core.config import load_settings

    return load_settings().published_dir / "search"


def open_index(root: Path | None = None) -> SearchIndex:
    """The published index (cached per process; reloaded when a new version is published)."""
    return _indexes.get(root or default_index_root())


def embedder_for(model_id: str) -> IssueEmbedder:
    """An embedder producing the same vectors as the published ``model_id``."""
    from symbiotic_assets.core.embedding import embedder_for_model_id

    return embedder_for_model_id(model_id)


def _as_datetime(value: datetime | date | str | None, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{name}={value!r}: expected an ISO date such as 2024-03-01") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def explain(hit: Hit, index: SearchIndex, surface: dict[str, str]) -> str:
    """Why a commit matched, in words: semantic similarity, the terms, exact identifiers."""
    f = hit.features
    parts = [f"semantic {f['semantic']:.2f}"]
    if hit.matched_terms:
        words = list(dict.fromkeys(surface.get(t, t) for t in hit.matched_terms))
        parts.append("terms: " + ", ".join(words[:8]))
    if f["hash_prefix"] > 0:
        parts.append("hash prefix")
    if f["issue_ref"] > 0:
        parts.append("issue reference")
    if f["identifier"] > 0:
        parts.append("identifier")
    if hit.click is not None and hit.click.boost > 0:
        parts.append(f"clicked for similar queries ({hit.click.queries})")
    elif hit.click is not None and hit.click.boost < 0:
        parts.append("skipped for similar queries")
    if index.weights.source in ("learned", "history"):
        parts.append("learned ranker")
    return "; ".join(parts)


@overload
def semantic_search(
    query: str,
    k: int = 10,
    repositories: Sequence[str] | None = None,
    authors: Sequence[str] | None = None,
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
    paths: Sequence[str] | None = None,
    include_merges: bool = False,
    *,
    index_root: Path | None = None,
    grouped: Literal[False] = False,
) -> list[SearchResult]: ...


@overload
def semantic_search(
    query: str,
    k: int = 10,
    repositories: Sequence[str] | None = None,
    authors: Sequence[str] | None = None,
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
    paths: Sequence[str] | None = None,
    include_merges: bool = False,
    *,
    index_root: Path | None = None,
    grouped: Literal[True],
) -> list[ChangeResult]: ...


def semantic_search(
    query: str,
    k: int = 10,
    repositories: Sequence[str] | None = None,
    authors: Sequence[str] | None = None,
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
    paths: Sequence[str] | None = None,
    include_merges: bool = False,
    *,
    index_root: Path | None = None,
    grouped: bool = False,
) -> list[SearchResult] | list[ChangeResult]:
    """Commits best matching ``query`` across all published repositories, best first.

    Filters: repository names, author substrings (name, case-insensitive),
    authored in ``[since, until)``, touching a path under one of ``paths``;
    merges are left out unless ``include_merges``.

    ``grouped=True`` returns up to ``k`` changes instead (``ChangeResult``: a pull
    request with all of its commits among the best ``5 * k`` matches, or a lone
    commit), read from the change groups published next to the index.
    """
    if grouped:
        if not 1 <= k <= 1000:
            raise ValueError(f"k={k}: must be between 1 and 1000")
        flat = semantic_search(
            query, grouped_pool(k), repositories, authors, since, until, paths,
            include_merges, index_root=index_root,
        )  # fmt: skip
        return changes_of(flat, k, index_root=index_root)
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"query={query!r}: must be a non-empty string")
    if not 1 <= k <= 1000:
        raise ValueError(f"k={k}: must be between 1 and 1000")
    if isinstance(repositories, str) or isinstance(authors, str) or isinstance(paths, str):
        raise TypeError("repositories, authors and paths take lists of strings, not one string")
    index = open_index(index_root)
    if index.size == 0:
        return []
    unknown = sorted(set(repositories or ()) - set(index.repository_names))
    if unknown:
        raise ValueError(
            f"repositories: {', '.join(unknown)} not in the published index "
            f"(known: {', '.join(index.repository_names)})"
        )
    mask = index.filter_mask(
        repositories=repositories,
        authors=authors,
        since=_as_datetime(since, "since"),
        until=_as_datetime(until, "until"),
        paths=paths,
        include_merges=include_merges,
    )
    if mask is not None and not mask.any():
        return []
    parsed = parse_query(query)
    embedder = embedder_for(index.model_id)
    text = " ".join(query.split())
    hits = index.rank(parsed, lambda: embedder.embed_one(text), k=k, mask=mask)
    surface = {
        t.term: (t.surface.lower() if t.kind == "word" else t.surface) for t in parsed.tokens
    }
    out: list[SearchResult] = []
    for rank, hit in enumerate(hits, start=1):
        d = hit.doc
        out.append(
            SearchResult(
                hash=index.hash_of(d),
                repository=index.repository_names[int(index.repository_codes[d])],
                author=index.author_names[int(index.author_codes[d])],
                date=datetime.fromtimestamp(int(index.authored_at[d]), UTC).isoformat(),
                subject=index.subject(d),
                score=round(hit.score, 4),
                why=explain(hit, index, surface),
                rank=rank,
                is_merge=bool(index.is_merge[d]),
                paths=index.doc_paths(d)[:20],
            )
        )
    return out


def record_search(
    query: str,
    results: Sequence[SearchResult | str],
    *,
    search_id: str | None = None,
    session_id: str | None = None,
    project: str | None = None,
    store: StoreLike = None,
) -> str:
    """Record that ``results`` (in rank order) were shown for ``query``; returns the search id.

    Pass the id to ``record_click`` so that the click joins this search exactly.
    """
    from symbiotic_assets.events.models import SearchEvent
    from symbiotic_assets.events.store import record_event

    sid = search_id or uuid.uuid4().hex
    shown = [r.hash if isinstance(r, SearchResult) else str(r) for r in results]
    record_event(
        SearchEvent(
            search_id=sid,
            query=query,
            results_shown=shown,
            session_id=session_id,
            project=project,
            idempotency_key=f"search:{sid}",
        ),
        store=store,
    )
    return sid


def record_click(
    query: str,
    clicked_hash: str,
    rank: int,
    *,
    search_id: str | None = None,
    session_id: str | None = None,
    project: str | None = None,
    store: StoreLike = None,
) -> int:
    """Record that the result at ``rank`` (1-based) was picked; returns the event id."""
    from symbiotic_assets.events.models import SearchClick
    from symbiotic_assets.events.store import record_event

    key = f"click:{search_id}:{clicked_hash}" if search_id else None
    return record_event(
        SearchClick(
            search_id=search_id,
            query=query,
            clicked_hash=clicked_hash,
            rank=rank,
            session_id=session_id,
            project=project,
            idempotency_key=key,
        ),
        store=store,
    )
