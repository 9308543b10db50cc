"""Two repositories whose every analytics figure is known by construction.

Built with git itself (fixed dates and identities) and run through the real extraction
(``refresh_repository``, ``detect_merge_conflicts``, ``compute_metrics``), so the marts,
the published snapshot and every Grafana panel are tested on what production writes.

``alpha`` (a local clone with a reflog), dates UTC unless noted:
  a1  2024-01-15 09:00      Alice  initial commit on main
  a2  2024-01-20 09:00      Bob    on branch stale-idea (never merged: stale at AS_OF)
  a3  2024-03-04 11:00      Bob    on feature
  a4  2024-03-05 14:00      Alice  (09:00 -0500) on main
  m1  2024-03-05 15:00      Carol  merge feature: clean
  a5  2024-03-06 09:00      Bob    on topic, changes line 1 of app.py
  a6  2024-03-06 11:00      Alice  on main, changes line 1 of app.py
  m2  2024-03-07 10:00      Carol  merge topic: conflict
  a7  2024-03-07 12:00      Alice  on main
  a8  2024-03-28 10:00      Alice  on fresh-wip (unmerged, not stale)
  HEAD switches (reflog): 01-20 x2, 03-04 x2, 03-06 x2 (+1 main->main, not a switch), 03-28 x2

``beta`` (its reflog removed: branch switches unknown):
  b1  2024-03-04 22:00 -0800 = 03-05 06:00 UTC  Dave   (local date differs from UTC date)
  b2  2024-03-05 10:00      Erin
  b3  2024-03-05 12:00      Dave   on side
  b4  2024-03-06 09:00      Erin   on main
  m3  2024-03-06 10:00      Erin   merge side: clean
  b5  2024-03-20 09:00      Frank
  b6  2024-03-21 09:00      Frank  extracted, then removed by `git reset --hard` (unreachable)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gitrepo import GitRepoBuilder

from symbiotic_assets.config import RepositorySpec
from symbiotic_assets.git.extract import compute_metrics, detect_merge_conflicts, refresh_repository

AS_OF = "2024-04-01 00:00:00"
ALICE = ("Alice Example", "alice@example.com")
BOB = ("Bob Example", "bob@example.com")
CAROL = ("Carol Example", "carol@example.com")
DAVE = ("Dave Example", "dave@example.com")
ERIN = ("Erin Example", "erin@example.com")
FRANK = ("Frank Example", "frank@example.com")


@dataclass(frozen=True)
class AnalyticsFixture:
    warehouse: Path
    specs: tuple[RepositorySpec, ...]
    commits: dict[str, str]

    def spec(self, name: str) -> RepositorySpec:
        return next(s for s in self.specs if s.name == name)


def build_alpha(path: Path) -> dict[str, str]:
    b = GitRepoBuilder(path)
    c: dict[str, str] = {}
    c["a1"] = b.commit("Initial commit", "2024-01-15T09:00:00+0000", ALICE,
                       {"app.py": "a = 1\nb = 2\nc = 3\n", "README.md": "alpha\n"})  # fmt: skip
    b.git("branch", "stale-idea")
    b.checkout("stale-idea", date="2024-01-20T08:00:00+0000")
    c["a2"] = b.commit("Try an idea", "2024-01-20T10:00:00+0100", BOB, {"idea.txt": "maybe\n"})
    b.checkout("main", date="2024-01-20T11:00:00+0000")
    b.git("branch", "feature")
    b.checkout("feature", date="2024-03-04T10:00:00+0000")
    c["a3"] = b.commit("Add feature", "2024-03-04T11:00:00+0000", BOB, {"feature.py": "x = 1\n"})
    b.checkout("main", date="2024-03-04T12:00:00+0000")
    c["a4"] = b.commit("Docs", "2024-03-05T09:00:00-0500", ALICE, {"README.md": "alpha v2\n"})
    assert b.merge("feature", "Merge branch 'feature'", "2024-03-05T15:00:00+0000", CAROL) is False
    c["m1"] = b.head()
    b.git("branch", "topic")
    b.checkout("topic", date="2024-03-06T08:00:00+0000")
    c["a5"] = b.commit("a = 100", "2024-03-06T09:00:00+0000", BOB,
                       {"app.py": "a = 100\nb = 2\nc = 3\n"})  # fmt: skip
    b.checkout("main", date="2024-03-06T10:00:00+0000")
    b.checkout("main", date="2024-03-06T10:00:01+0000")  # main -> main: not a switch
    c["a6"] = b.commit("a = 200", "2024-03-06T11:00:00+0000", ALICE,
                       {"app.py": "a = 200\nb = 2\nc = 3\n"})  # fmt: skip
    assert b.merge("topic", "Merge branch 'topic'", "2024-03-07T10:00:00+0000", CAROL) is True
    c["m2"] = b.head()
    c["a7"] = b.commit("Tidy", "2024-03-07T12:00:00+0000", ALICE, {"tidy.txt": "t\n"})
    b.git("branch", "fresh-wip")
    b.checkout("fresh-wip", date="2024-03-28T09:00:00+0000")
    c["a8"] = b.commit("Work in progress", "2024-03-28T10:00:00+0000", ALICE, {"wip.txt": "w\n"})
    b.checkout("main", date="2024-03-28T11:00:00+0000")
    return c


def build_beta(path: Path) -> tuple[GitRepoBuilder, dict[str, str]]:
    b = GitRepoBuilder(path)
    c: dict[str, str] = {}
    c["b1"] = b.commit("Start beta", "2024-03-04T22:00:00-0800", DAVE, {"a.txt": "a\n"})
    c["b2"] = b.commit("Second", "2024-03-05T10:00:00+0000", ERIN, {"a.txt": "a2\n"})
    b.git("branch", "side")
    b.checkout("side", date="2024-03-05T11:00:00+0000")
    c["b3"] = b.commit("Side work", "2024-03-05T12:00:00+0000", DAVE, {"b.txt": "b\n"})
    b.checkout("main", date="2024-03-06T08:00:00+0000")
    c["b4"] = b.commit("Main work", "2024-03-06T09:00:00+0000", ERIN, {"c.txt": "c\n"})
    assert b.merge("side", "Merge branch 'side'", "2024-03-06T10:00:00+0000", ERIN) is False
    c["m3"] = b.head()
    c["b5"] = b.commit("Later", "2024-03-20T09:00:00+0000", FRANK, {"d.txt": "d\n"})
    c["b6"] = b.commit("Oops", "2024-03-21T09:00:00+0000", FRANK, {"e.txt": "e\n"})
    shutil.rmtree(path / ".git" / "logs")
    return b, c


def extract(warehouse: Path, spec: RepositorySpec) -> None:
    refresh_repository(str(warehouse), spec)
    detect_merge_conflicts(str(warehouse), spec, workers=2)
    compute_metrics(str(warehouse), spec)


def build_analytics_fixture(root: Path) -> AnalyticsFixture:
    """Both repositories extracted into ``root/warehouse.duckdb`` (beta rewritten once)."""
    root.mkdir(parents=True, exist_ok=True)
    warehouse = root / "warehouse.duckdb"
    alpha = RepositorySpec(name="alpha", path=root / "repos" / "alpha")
    beta = RepositorySpec(name="beta", path=root / "repos" / "beta")
    commits = build_alpha(alpha.path)
    beta_builder, beta_commits = build_beta(beta.path)
    commits.update(beta_commits)
    extract(warehouse, alpha)
    extract(warehouse, beta)
    # rewrite beta's history: b6 must stay stored but stop counting
    beta_builder.git("reset", "-q", "--hard", commits["b5"])
    shutil.rmtree(beta.path / ".git" / "logs", ignore_errors=True)
    extract(warehouse, beta)
    return AnalyticsFixture(warehouse=warehouse, specs=(alpha, beta), commits=commits)


@dataclass(frozen=True)
class PublishedFixture:
    fixture: AnalyticsFixture
    home: Path
    snapshot: Path
    materialized_keys: frozenset[str]


_BUILT: dict[str, PublishedFixture] = {}


def build_published_fixture(root: Path) -> PublishedFixture:
    """Fixture repositories -> extraction -> `dbt build` and publish through Dagster.

    Runs the real assets with ``dg.materialize``: the dbt models (dagster-dbt, dbt-duckdb)
    with ``as_of`` pinned to AS_OF, then the publish asset. Cached per process, because
    three test modules read the same snapshot.
    """
    if "default" in _BUILT:
        return _BUILT["default"]
    import os

    fixture = build_analytics_fixture(root / "data")
    home = root / "home"
    saved = {k: os.environ.get(k) for k in ("SYMBIOTIC_HOME", "SYMBIOTIC_WAREHOUSE")}
    os.environ["SYMBIOTIC_HOME"] = str(home)
    os.environ["SYMBIOTIC_WAREHOUSE"] = str(fixture.warehouse)
    try:
        keys = _materialize(fixture)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    built = PublishedFixture(
        fixture=fixture,
        home=home,
        snapshot=home / "published" / "warehouse.duckdb",
        materialized_keys=keys,
    )
    _BUILT["default"] = built
    return built


def _materialize(fixture: AnalyticsFixture) -> frozenset[str]:
    import dagster as dg

    from symbiotic_assets.analytics.definitions import build_analytics_definitions
    from symbiotic_assets.analytics.project import prepare_dbt_manifest
    from symbiotic_assets.serving.definitions import defs as serving_defs
    from symbiotic_assets.warehouse import WarehouseResource

    prepare_dbt_manifest()
    analytics = build_analytics_definitions()
    dbt_assets_def = next(iter(analytics.assets or []))
    publish_def = next(iter(serving_defs.assets or []))
    resources = {
        **(analytics.resources or {}),
        "warehouse": WarehouseResource(database=str(fixture.warehouse)),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [dbt_assets_def, publish_def],  # type: ignore[list-item]
            resources=resources,
            instance=instance,
            run_config={"ops": {"analytics_dbt_models": {"config": {"as_of": AS_OF}}}},
        )
        assert result.success
        keys = frozenset(
            e.asset_key.to_user_string()
            for e in result.get_asset_materialization_events()
            if e.asset_key is not None
        )
    return keys
