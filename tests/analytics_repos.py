"""Two repositories whose every analytics figure is known by construction.

Built with git itself (fixed dates and identities) and run through the real extraction
(``refresh_repository``, ``detect_merge_conflicts``), so the marts,
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

Memory events (recorded through ``MemoryStore``, loaded by the memory asset), UTC:
  fix attempts  #1 SecurityAgent:security_fix security ok    alpha s-alpha-1 03-07 10:00
                #2 SecurityAgent:security_fix security ok    alpha s-alpha-1 03-07 11:00
                #3 SecurityAgent:security_fix security FAIL  beta  s-beta-1  03-20 09:00
                #4 SecurityAgent:security_fix security ok    beta  s-beta-1  03-20 10:00 (deleted)
                #5 FormattingAgent:format     formatting ok  alpha s-alpha-1 03-07 12:00
                #6 RefactoringAgent:refactor  complexity FAIL alpha s-alpha-1 03-07 13:00
                #7 RefactoringAgent:refactor  complexity FAIL beta  s-beta-1  03-20 11:00
                #8 RefactoringAgent:refactor  type_error ok  gamma s-gamma   03-15 10:00
  feedback      r1 security_fix 0.85 followed succeeded    r2 security_fix 0.82 followed failed
                r3 security_fix 0.80 not followed          r8 security_fix 1.00 not followed
                r4 format 0.95 followed succeeded          r7 format 0.91 followed, outcome unknown
                r9 format (no confidence) not followed     r5 refactor/complexity 0.35 followed failed
                r6 names attempt #8 only (agent etc. from it) 0.30 followed succeeded
  sessions      s-alpha-1 alpha 03-07 09:00 -> 17:00 (quality 85, tools pytest; ruff, mypy)
                s-beta-1  "Beta" 03-20 08:00 -> 12:00 (no duration sent: 4 h from the events)
                s-gamma   gamma (no such repository), end only 03-15 10:30, 1800 s
                s-open    alpha, start only 03-28 09:30
  skills        pytest-runner    alpha python low: ok, ok, failed (s-alpha-1); beta: unknown
                refactor-planner alpha python high: ok; beta: not completed (timeout)
                doc-writer       beta markdown low: ok
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gitrepo import GitRepoBuilder

from symbiotic_assets.core.config import RepositorySpec
from symbiotic_assets.git.extract import detect_merge_conflicts, refresh_repository

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


def _attempt(agent: str, strategy: str, issue_type: str, success: bool, project: str,
             session: str, at: str) -> dict:  # fmt: skip
    return {
        "issue_type": issue_type, "message": f"{issue_type} issue in {project}",
        "file_path": "src/app.py", "line_number": 1, "stage": "comprehensive", "agent": agent,
        "strategy": strategy, "success": success, "session_id": session, "project": project,
        "language": "python", "timestamp": at,
    }  # fmt: skip


def record_memory_events(store_path: Path) -> dict[str, int]:
    """The memory events of the module docstring, through the real store API; attempt ids."""
    from symbiotic_assets.events.store import MemoryStore

    sec, fmt, ref = ("SecurityAgent", "security_fix"), ("FormattingAgent", "format"), (
        "RefactoringAgent", "refactor")  # fmt: skip
    ids: dict[str, int] = {}
    with MemoryStore(store_path) as store:
        for name, (agent, strategy), issue, ok, project, session, at in [
            ("#1", sec, "security", True, "alpha", "s-alpha-1", "2024-03-07T10:00:00Z"),
            ("#2", sec, "security", True, "alpha", "s-alpha-1", "2024-03-07T11:00:00Z"),
            ("#3", sec, "security", False, "beta", "s-beta-1", "2024-03-20T09:00:00Z"),
            ("#4", sec, "security", True, "beta", "s-beta-1", "2024-03-20T10:00:00Z"),
            ("#5", fmt, "formatting", True, "alpha", "s-alpha-1", "2024-03-07T12:00:00Z"),
            ("#6", ref, "complexity", False, "alpha", "s-alpha-1", "2024-03-07T13:00:00Z"),
            ("#7", ref, "complexity", False, "beta", "s-beta-1", "2024-03-20T11:00:00Z"),
            ("#8", ref, "type_error", True, "gamma", "s-gamma", "2024-03-15T10:00:00Z"),
        ]:
            ids[name] = store.record_fix_attempt(
                _attempt(agent, strategy, issue, ok, project, session, at)
            )
        store.delete_fix_attempt(ids["#4"], reason="reported twice")

        def fb(rid: str, strategy: tuple[str, str] | None, issue: str | None, conf: float | None,
               followed: bool, outcome: str, **extra: object) -> None:  # fmt: skip
            data = {"recommendation_id": rid, "issue_type": issue, "confidence": conf,
                    "shown": True, "followed": followed, "outcome": outcome,
                    "timestamp": "2024-03-10T00:00:00Z", **extra}  # fmt: skip
            if strategy:
                data["agent"], data["strategy"] = strategy
            store.record_feedback(data)

        fb("r1", sec, "security", 0.85, True, "succeeded", project="alpha")
        fb("r2", sec, "security", 0.82, True, "failed")
        fb("r3", sec, "security", 0.80, False, "unknown")
        fb("r8", sec, "security", 1.0, False, "unknown")
        fb("r4", fmt, "formatting", 0.95, True, "succeeded")
        fb("r7", fmt, "formatting", 0.91, True, "unknown")
        fb("r9", fmt, "formatting", None, False, "unknown")
        fb("r5", ref, "complexity", 0.35, True, "failed")
        fb("r6", None, None, 0.30, True, "succeeded", fix_attempt_id=ids["#8"])

        for event in [
            {"session_id": "s-alpha-1", "phase": "start", "project": "alpha", "language": "Python",
             "tools_used": ["pytest"], "timestamp": "2024-03-07T09:00:00Z"},
            {"session_id": "s-alpha-1", "phase": "end", "project": "alpha", "duration_seconds": 28800,
             "quality_score": 85, "tools_used": ["ruff", "mypy"], "timestamp": "2024-03-07T17:00:00Z"},
            {"session_id": "s-beta-1", "phase": "start", "project": "Beta",
             "timestamp": "2024-03-20T08:00:00Z"},
            {"session_id": "s-beta-1", "phase": "end", "project": "Beta", "quality_score": 70,
             "timestamp": "2024-03-20T12:00:00Z"},
            {"session_id": "s-gamma", "phase": "end", "project": "gamma", "duration_seconds": 1800,
             "quality_score": 60, "timestamp": "2024-03-15T10:30:00Z"},
            {"session_id": "s-open", "phase": "start", "project": "alpha",
             "timestamp": "2024-03-28T09:30:00Z"},
        ]:  # fmt: skip
            store.record_event(event, event_type="session")

        def skill(name: str, session: str, project: str, language: str, complexity: str,
                  completed: bool, succeeded: bool | None, at: str, **extra: object) -> None:  # fmt: skip
            store.record_event(
                {"skill": name, "session_id": session, "project": project, "language": language,
                 "complexity": complexity, "completed": completed, "succeeded": succeeded,
                 "timestamp": at, **extra},
                event_type="skill_invocation",
            )  # fmt: skip

        skill("pytest-runner", "s-alpha-1", "alpha", "python", "low", True, True,
              "2024-03-07T10:00:00Z", duration_seconds=30)  # fmt: skip
        skill("pytest-runner", "s-alpha-1", "alpha", "python", "low", True, True,
              "2024-03-07T11:00:00Z", duration_seconds=50)  # fmt: skip
        skill("pytest-runner", "s-alpha-1", "alpha", "python", "low", True, False,
              "2024-03-07T12:00:00Z", duration_seconds=40, error_type="assertion")  # fmt: skip
        skill("refactor-planner", "s-alpha-1", "alpha", "python", "high", True, True,
              "2024-03-07T13:00:00Z", duration_seconds=120)  # fmt: skip
        skill("refactor-planner", "s-beta-1", "beta", "python", "high", False, None,
              "2024-03-20T10:00:00Z", error_type="timeout")  # fmt: skip
        skill("pytest-runner", "s-beta-1", "beta", "python", "low", True, None,
              "2024-03-20T11:00:00Z")  # fmt: skip
        skill("doc-writer", "s-beta-1", "beta", "markdown", "low", True, True,
              "2024-03-20T11:30:00Z")  # fmt: skip
    return ids


@dataclass(frozen=True)
class PublishedFixture:
    fixture: AnalyticsFixture
    home: Path
    snapshot: Path
    materialized_keys: frozenset[str]
    attempt_ids: dict[str, int]


_BUILT: dict[str, PublishedFixture] = {}


def build_published_fixture(root: Path) -> PublishedFixture:
    """Fixture repositories and memory events -> `dbt build` and publish through Dagster.

    Runs the real assets with ``dg.materialize``: the memory load (store -> warehouse),
    the dbt models (dagster-dbt, dbt-duckdb) with ``as_of`` pinned to AS_OF, then the
    publish asset. Cached per process, because
    three test modules read the same snapshot.
    """
    if "default" in _BUILT:
        return _BUILT["default"]
    import os

    fixture = build_analytics_fixture(root / "data")
    home = root / "home"
    attempt_ids = record_memory_events(home / "memory.sqlite")
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
        attempt_ids=attempt_ids,
    )
    _BUILT["default"] = built
    return built


def _materialize(fixture: AnalyticsFixture) -> frozenset[str]:
    import dagster as dg

    from symbiotic_assets.analytics.definitions import build_analytics_definitions
    from symbiotic_assets.analytics.project import prepare_dbt_manifest
    from symbiotic_assets.core.resources import WarehouseResource
    from symbiotic_assets.memory.assets import memory_tables
    from symbiotic_assets.serving.definitions import defs as serving_defs

    prepare_dbt_manifest()
    analytics = build_analytics_definitions()
    dbt_assets_def = next(iter(analytics.assets or []))
    publish_def = next(iter(serving_defs.assets or []))
    resources = {
        **(analytics.resources or {}),
        **(serving_defs.resources or {}),  # settings: where the snapshot is published
        "warehouse": WarehouseResource(database=str(fixture.warehouse)),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [memory_tables, dbt_assets_def, publish_def],  # type: ignore[list-item]
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
