"""The ranker learns from merged PRs before anyone clicked (search/ranker_weights).

A repository built with git holds 36 pull requests merged with GitHub's message;
each PR title says what its commits do in other words. ``history_queries`` reads
them back from the change groups, and the ``search/ranker_weights`` asset learns
weights from them against the published index: the weights move away from the
defaults and fit the training pairs better (lower pairwise logistic loss).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from gitrepo import ALICE, BOB, GitRepoBuilder

from symbiotic_assets.core.config import PROJECT_ROOT

MODEL_CACHE = PROJECT_ROOT / ".pytest_cache" / "symbiotic-models"
TOPICS = ["retry", "cache", "proxy", "cookie", "header", "timeout", "redirect", "upload",
          "stream", "encoding", "session", "auth"]  # fmt: skip
VERBS = [("Handle", "Fix"), ("Speed up", "Optimize"), ("Document", "Docs for")]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from symbiotic_assets.core.config import RepositorySpec
    from symbiotic_assets.core.embedding import IssueEmbedder
    from symbiotic_assets.core.warehouse import connect
    from symbiotic_assets.git.extract import refresh_repository
    from symbiotic_assets.git.repository import GitRepository
    from symbiotic_assets.search.change_terms import refresh_change_terms
    from symbiotic_assets.search.commit_embeddings import (
        embed_repository,
        model_key,
        publish_from_warehouse,
    )

    base = tmp_path_factory.mktemp("history")
    home = base / "home"
    home.mkdir()
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(MODEL_CACHE)
    b = GitRepoBuilder(base / "demo")
    b.commit("Initial commit", "2024-01-01T09:00:00+0000", ALICE, {"README.md": "demo\n"})
    n = 0
    for topic in TOPICS:
        for title_verb, commit_verb in VERBS:
            n += 1
            day = f"2024-{1 + n // 28:02d}-{1 + n % 28:02d}"
            b.checkout("-b", f"pr-{n}")
            b.commit(f"{commit_verb} {topic} code path", f"{day}T10:00:00+0000", BOB,
                     {f"src/{topic}/{commit_verb.split()[0].lower()}.py": f"# {n}\n"})  # fmt: skip
            b.checkout("main")
            b.merge(f"pr-{n}", f"Merge pull request #{n} from bob/pr-{n}\n\n"
                    f"{title_verb} the {topic} feature", f"{day}T12:00:00+0000", ALICE)  # fmt: skip
    db = base / "warehouse.duckdb"
    refresh_repository(db, RepositorySpec(name="demo", path=b.path))
    embedder = IssueEmbedder(cache_dir=MODEL_CACHE)
    with connect(db) as con:
        embed_repository(con, "demo", embedder)
        refresh_change_terms(con, GitRepository.open("demo", b.path), "demo")
        publish_from_warehouse(con, home / "published" / "search", model_key(embedder))
    mp = pytest.MonkeyPatch()
    mp.setenv("SYMBIOTIC_HOME", str(home))
    mp.setenv("SYMBIOTIC_WAREHOUSE", str(db))
    yield db
    mp.undo()


def test_history_queries_are_the_merged_prs(warehouse: Path) -> None:
    from symbiotic_assets.core.warehouse import connect
    from symbiotic_assets.search.change_terms import history_queries

    with connect(warehouse) as con:
        history = history_queries(con)
        capped = history_queries(con, per_repository=5)
    assert len(history) == len(TOPICS) * len(VERBS)
    assert all(len(commits) == 1 for _, _, commits in history)
    assert "Handle the retry feature" in {t for _, t, _ in history}
    # the cap keeps the newest PRs
    assert [t for _, t, _ in capped] == [t for _, t, _ in history[-5:]]


def test_ranker_weights_asset_learns_from_history_before_any_click(warehouse: Path) -> None:
    from symbiotic_assets.core.resources import (
        EmbedderResource,
        SettingsResource,
        WarehouseResource,
    )
    from symbiotic_assets.core.warehouse import connect
    from symbiotic_assets.search.assets import ranker_weights
    from symbiotic_assets.search.ranker import DEFAULT_WEIGHTS, RankerWeights

    result = dg.materialize(
        [ranker_weights],
        resources={
            "warehouse": WarehouseResource(database=str(warehouse)),
            "search_embedder": EmbedderResource(cache_dir=str(MODEL_CACHE)),
            "settings": SettingsResource(),
        },
    )
    assert result.success
    with connect(warehouse) as con:
        row = con.execute(
            "SELECT weights_json FROM search.ranker_weights ORDER BY trained_at DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    learned = RankerWeights.from_json(row[0])
    assert learned.source == "history"
    assert learned.stats["pairs"] > 0
    assert learned.stats["loss_after"] < learned.stats["loss_before"]
    assert any(abs(learned.weights[f] - DEFAULT_WEIGHTS[f]) > 1e-3 for f in DEFAULT_WEIGHTS)
