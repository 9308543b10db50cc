"""Issue 3 end to end: store -> memory_load -> memory_learn -> published recommender -> API.

Real parts only: the SQLite memory store, the DuckDB warehouse, the ONNX MiniLM
embedder, Dagster jobs executed in process, git and dbt for the velocity figure.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pytest

from benchmarks.fix_history import KINDS, generate_history
from symbiotic_assets.events.store import MemoryStore

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODEL_CACHE = PROJECT_ROOT / ".pytest_cache" / "symbiotic-models"  # survives runs, never committed
SQLI = {
    "issue_type": "security",
    "message": "B608: Possible SQL injection vector through string-based query construction",
    "file_path": "src/billing/sql_query.py",
    "stage": "bandit",
}
PATTERN = "security|SecurityAgent:security_fix"


def history_kinds() -> tuple:
    """The generator's kinds, with SecurityAgent:security_fix the fix that works for SQL injection."""
    out = []
    for kind in KINDS:
        if kind.name == "sql_injection":
            kind = dataclasses.replace(
                kind,
                truth={
                    "SecurityAgent:security_fix": 0.9,
                    "SecurityAgent:input_validation": 0.25,
                    "RefactoringAgent:refactor": 0.15,
                    "PatternAgent:pattern_replace": 0.15,
                },
                drift={},
            )
        out.append(kind)
    return tuple(out)


def materialized(result: dg.ExecuteInProcessResult, key: list[str]) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key == dg.AssetKey(key):
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"no materialization of {key}")


def checks_passed(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A realistic history recorded through the store, loaded and learned once for the module."""
    base = tmp_path_factory.mktemp("learning")
    home = base / "home"
    home.mkdir()
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(MODEL_CACHE)  # reuse the ONNX export across test runs
    mp = pytest.MonkeyPatch()
    mp.setenv("SYMBIOTIC_HOME", str(home))
    for var in (
        "SYMBIOTIC_CONFIG",
        "SYMBIOTIC_WAREHOUSE",
        "SYMBIOTIC_REPOSITORIES",
        "DAGSTER_HOME",
    ):
        mp.delenv(var, raising=False)
    history = generate_history(n=360, seed=3, days=90, kinds=history_kinds())
    # the generator's calendar is fixed; move it so that the history ends an hour ago
    shift = datetime.now(UTC) - timedelta(hours=1) - history.attempts[-1].timestamp
    with MemoryStore(home / "memory.sqlite") as store:
        for i, a in enumerate(history.attempts):
            store.record_fix_attempt(
                {
                    "issue_type": a.issue_type, "message": a.message, "file_path": a.file_path,
                    "line_number": a.line_number, "stage": a.stage, "agent": a.agent,
                    "strategy": a.strategy, "success": a.success, "session_id": a.session_id,
                    "timestamp": (a.timestamp + shift).isoformat(), "project": "demo",
                    "idempotency_key": f"hist-{i}",
                }
            )  # fmt: skip
        store.record_feedback({"recommendation_id": "r-1", "issue_type": "security",
                               "agent": "SecurityAgent", "strategy": "security_fix", "shown": True,
                               "followed": True, "outcome": "succeeded", "confidence": 0.8})  # fmt: skip
    from symbiotic_assets.definitions import build_definitions

    defs = build_definitions()
    with dg.instance_for_test() as instance:
        load = defs.resolve_job_def("memory_load").execute_in_process(instance=instance)
        assert load.success
        first = defs.resolve_job_def("memory_learn").execute_in_process(instance=instance)
        assert first.success
        from symbiotic_assets.memory.api import recommend_strategy

        before = recommend_strategy(SQLI)
        # nothing changed: forced, the state continues from the first; not forced, skipped
        forced = {"ops": {"memory__strategy_weights": {"config": {"force": True}}}}
        second = defs.resolve_job_def("memory_learn").execute_in_process(
            instance=instance, run_config=forced
        )
        assert second.success
        third = defs.resolve_job_def("memory_learn").execute_in_process(instance=instance)
        assert third.success
        yield {
            "home": home,
            "defs": defs,
            "instance": instance,
            "history": history,
            "shift": shift,
            "first": first,
            "second": second,
            "third": third,
            "before": before,
        }
    mp.undo()


def test_embeddings_are_unit_384_and_incremental(learned: dict) -> None:
    first = materialized(learned["first"], ["memory", "fix_attempt_embeddings"])
    assert first["new_vectors"] == 360 and first["vectors"] == 360
    assert first["model_calls"] <= 360  # repeated texts come from the cache
    assert checks_passed(learned["first"])["unit_vectors_384"]
    again = materialized(learned["second"], ["memory", "fix_attempt_embeddings"])
    assert again["new_vectors"] == 0 and again["model_calls"] == 0
    with duckdb.connect(str(learned["home"] / "warehouse.duckdb"), read_only=True) as con:
        vectors = np.asarray(
            [
                r[0]
                for r in con.execute("SELECT vector FROM memory.fix_attempt_embeddings").fetchall()
            ],
            dtype=np.float32,
        )
        assert con.execute("SELECT typeof(vector) FROM memory.fix_attempt_embeddings LIMIT 1"
                           ).fetchone() == ("FLOAT[384]",)  # fmt: skip
    assert vectors.shape == (360, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_strategy_weights_metadata_and_state(learned: dict) -> None:
    meta = materialized(learned["first"], ["memory", "strategy_weights"])
    assert meta["patterns"] > 10 and meta["replayed"] == 360
    assert 0.0 < meta["hit_rate"] <= 1.0
    assert 0.0 <= meta["calibration_ece"] < 0.3
    assert meta["calibrated"] is True
    second = materialized(learned["second"], ["memory", "strategy_weights"])
    assert second["version"] == meta["version"] + 1
    with duckdb.connect(str(learned["home"] / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT version, last_attempt_id, state_json FROM memory.recommender_state ORDER BY version"
        ).fetchall()
    assert [r[0] for r in rows] == [1, 2]
    assert rows[0][1] == rows[1][1] == 360
    first_state, second_state = (json.loads(r[2]) for r in rows)
    # no new outcomes between the runs: the weights are carried over unchanged
    assert first_state["state"]["pattern_weights"] == second_state["state"]["pattern_weights"]
    # and a third run with nothing new neither learns nor publishes (rows above: no v3)
    third = materialized(learned["third"], ["memory", "strategy_weights"])
    assert third["skipped"] is True and third["version"] == 2
    index = materialized(learned["third"], ["memory", "recommender_index"])
    assert index["skipped"] is True
    assert (
        index["version"]
        == materialized(learned["second"], ["memory", "recommender_index"])["version"]
    )
    assert first_state["state"]["feedback"]["SecurityAgent:security_fix"] == {
        "shown": 1, "followed": 1, "succeeded": 1}  # fmt: skip


def test_sql_injection_gets_security_fix_with_evidence(learned: dict) -> None:
    from symbiotic_assets.memory.api import recommend_strategy

    rec = recommend_strategy(SQLI)
    assert rec.status == "ok"
    assert (rec.agent, rec.strategy) == ("SecurityAgent", "security_fix")
    assert rec.agent_strategy == "SecurityAgent:security_fix"
    assert 0.0 < rec.confidence < 1.0
    assert rec.recommendation_id and rec.recommendation_id != learned["before"].recommendation_id
    assert rec.evidence and all(e.similarity >= 0.3 for e in rec.evidence)
    top = rec.evidence[0]
    assert top.issue_type == "security" and "sql" in (top.message + top.file_path).lower()
    assert datetime.fromisoformat(top.timestamp).tzinfo is not None
    # an object with attributes works too, and bad input names the field
    obj = type("Issue", (), dict(SQLI))()
    assert recommend_strategy(obj).agent_strategy == "SecurityAgent:security_fix"
    with pytest.raises(ValueError, match="issue.message"):
        recommend_strategy({"issue_type": "security", "message": "  "})


def test_new_failures_lower_weight_and_confidence(learned: dict) -> None:
    from symbiotic_assets.memory.api import open_recommender, recommend_strategy

    home, defs, instance = learned["home"], learned["defs"], learned["instance"]
    before = recommend_strategy(SQLI)
    weight_before = open_recommender().state.pattern_weights[PATTERN]
    version_before = open_recommender().version
    now = datetime.now(UTC)
    with MemoryStore(home / "memory.sqlite") as store:
        for i in range(20):
            store.record_fix_attempt(
                {**SQLI, "message": f"{SQLI['message']} in build_query_{i}",
                 "agent": "SecurityAgent", "strategy": "security_fix", "success": False,
                 "timestamp": (now - timedelta(minutes=30 - i)).isoformat(),
                 "idempotency_key": f"new-failure-{i}"}
            )  # fmt: skip
    assert defs.resolve_job_def("memory_load").execute_in_process(instance=instance).success
    third = defs.resolve_job_def("memory_learn").execute_in_process(instance=instance)
    assert third.success
    assert materialized(third, ["memory", "fix_attempt_embeddings"])["new_vectors"] == 20
    published = open_recommender()
    assert published.version != version_before  # the pointer moved; the API reloaded
    weight_after = published.state.pattern_weights[PATTERN]
    assert weight_after < weight_before
    after = recommend_strategy(SQLI)
    if after.agent_strategy == "SecurityAgent:security_fix":
        assert after.confidence < before.confidence
    assert any(not e.success and e.agent == "SecurityAgent" for e in after.evidence[:5])


def test_learn_sensor_fires_once_per_load(learned: dict) -> None:
    sensor = learned["defs"].resolve_sensor_def("memory_learn_sensor")
    fired = sensor(dg.build_sensor_context(instance=learned["instance"]))
    assert len(fired.run_requests) == 1
    quiet = sensor(dg.build_sensor_context(instance=learned["instance"], cursor=fired.cursor))
    assert not quiet.run_requests


def test_no_history_yet(symbiotic_home: Path) -> None:
    from symbiotic_assets.memory.api import recommend_strategy

    rec = recommend_strategy(SQLI)
    assert rec.status == "no_history" and rec.agent is None and rec.confidence == 0.0
    assert "no history yet" in rec.reason


def test_velocity_and_recommend_while_warehouse_is_locked(learned: dict, tmp_path: Path) -> None:
    """git_refresh + analytics_refresh publish the snapshot; the API reads it under a writer lock."""
    from gitrepo import build_standard_repo

    from symbiotic_assets.analytics.project import prepare_dbt_manifest
    from symbiotic_assets.api import get_repository_health, get_velocity, recommend_strategy
    from symbiotic_assets.definitions import build_definitions

    built = build_standard_repo(tmp_path / "std")
    git = built["builder"]
    cfg = tmp_path / "symbiotic.yaml"
    cfg.write_text(f"repositories:\n  - path: {tmp_path / 'std'}\n    name: std\n")
    mp = pytest.MonkeyPatch()
    mp.setenv("SYMBIOTIC_CONFIG", str(cfg))
    try:
        prepare_dbt_manifest()
        defs = build_definitions()
        instance = learned["instance"]
        instance.add_dynamic_partitions("repositories", ["std"])
        refresh = defs.resolve_job_def("git_refresh")
        assert refresh.execute_in_process(instance=instance, partition_key="std").success
        assert (
            defs.resolve_job_def("analytics_refresh").execute_in_process(instance=instance).success
        )

        # hand count with git: reachable commits by author date (UTC) in the window
        dates = git.git("log", "--all", "--format=%ad", "--date=format-local:%Y-%m-%d").split()
        as_of, days = date(2024, 3, 4), 3
        window = {str(as_of - timedelta(days=d)) for d in range(days)}
        hand = sum(1 for d in dates if d in window)
        assert hand > 0
        warehouse = learned["home"] / "warehouse.duckdb"
        holder = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import duckdb, sys
                con = duckdb.connect({str(warehouse)!r})
                con.execute("CREATE TABLE IF NOT EXISTS memory.lock_probe (x INTEGER)")
                print("holding", flush=True)
                sys.stdin.readline()
            """)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert holder.stdout.readline().strip() == "holding"
            with pytest.raises(duckdb.IOException):  # the lock is real
                duckdb.connect(str(warehouse), read_only=True)
            assert get_velocity("std", days_back=days, as_of=as_of) == pytest.approx(hand / days)
            assert get_velocity(str(tmp_path / "std"), days, as_of=as_of) == pytest.approx(
                hand / days
            )
            all_time = len(set(git.git("rev-list", "--all").split()))
            assert get_velocity("std", 10, as_of=date(2024, 3, 10)) == pytest.approx(all_time / 10)
            assert get_repository_health("std")["repository"] == "std"
            rec = recommend_strategy(SQLI)  # files only: no warehouse connection needed
            assert rec.status == "ok" and rec.agent_strategy and rec.evidence
        finally:
            holder.stdin.write("\n")
            holder.stdin.flush()
            holder.wait(timeout=30)
        with pytest.raises(LookupError, match="nope"):
            get_velocity("nope")
        with pytest.raises(ValueError, match="days_back"):
            get_velocity("std", days_back=0)
    finally:
        mp.undo()


def test_old_learned_states_are_pruned_newest_kept(tmp_path: Path) -> None:
    from symbiotic_assets.memory.assets import _ensure_learning_schema, prune_recommender_state

    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        _ensure_learning_schema(con)
        for version in range(1, 6):
            con.execute(
                "INSERT INTO memory.recommender_state VALUES (?, now()::TIMESTAMP, 'm', ?, 0, '{}')",
                [version, version * 10],
            )
        assert prune_recommender_state(con, keep=2) == 3
        assert prune_recommender_state(con, keep=2) == 0  # idempotent
        rows = con.execute(
            "SELECT version, last_attempt_id FROM memory.recommender_state ORDER BY version"
        ).fetchall()
        assert rows == [(4, 40), (5, 50)]
        with pytest.raises(ValueError, match="keep=0"):
            prune_recommender_state(con, keep=0)
