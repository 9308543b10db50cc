"""`symbiotic run` killed with SIGKILL at several points, then run again: it completes and
the warehouse equals a clean run's, table by table.

Real processes on a repository built with git and an imported event log, configured
through SYMBIOTIC_HOME / SYMBIOTIC_CONFIG in a tmp dir. The test watches the Dagster
instance the CLI writes (SQLite under the home) to kill at the chosen moment: during git
extraction, while a later job holds the warehouse slot, and while dbt runs.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from ecosystem import BIN, MODEL_CACHE, clean_env, event_lines
from gitrepo import build_standard_repo

from symbiotic_assets.cli import DAGSTER_YAML

pytestmark = pytest.mark.slow

POOL = "duckdb_warehouse"
# Columns that hold the time of a load, a training or "now": they differ between any two runs.
IGNORED_COLUMNS = {
    "extracted_at", "embedded_at", "created_at", "trained_at", "loaded_at", "as_of",
    "days_since_last_commit", "recency_term", "version",
    "recorded_at",  # when `symbiotic import` stored the event: each home imported on its own
}  # fmt: skip
# Tables that keep one row per training or load (history): their newest state is compared.
NEWEST_ONLY = {
    "memory.recommender_state": "version",
    "search.click_model": "trained_at",
    "search.ranker_weights": "trained_at",
}
# memory.load_state keeps one high-water mark row per load: compare the mark per table
HIGH_WATER = {"memory.load_state": ("source_table", "last_id")}


def _normal(value: Any) -> Any:
    """Floats rounded (vectors and scores from the same inputs), lists as tuples, JSON
    objects parsed with their time keys (``trained_at``, ``version``...) left out."""
    if isinstance(value, str) and value.startswith("{"):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict):
        return tuple(sorted((k, _normal(v)) for k, v in value.items() if k not in IGNORED_COLUMNS))
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 5)
    if isinstance(value, list | tuple):
        return tuple(_normal(v) for v in value)
    return value


def warehouse_contents(path: Path) -> dict[str, list[tuple]]:
    """Every table's rows (load-time columns left out), sorted: a multiset per table."""
    out: dict[str, list[tuple]] = {}
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2"
        ).fetchall()
        for schema, table in tables:
            name = f"{schema}.{table}"
            cols = [
                c
                for (c,) in con.execute(
                    "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? "
                    "AND table_name = ? ORDER BY column_index",
                    [schema, table],
                ).fetchall()
                if c not in IGNORED_COLUMNS
            ]
            select = ", ".join(f'"{c}"' for c in cols)
            if name in NEWEST_ONLY:
                order = NEWEST_ONLY[name]
                sql = f'SELECT {select} FROM {name} ORDER BY "{order}" DESC LIMIT 1'
            elif name in HIGH_WATER:
                key, mark = HIGH_WATER[name]
                sql = f'SELECT "{key}", max("{mark}") FROM {name} GROUP BY 1'
            else:
                sql = f"SELECT {select} FROM {name}"
            rows = [_normal(list(r)) for r in con.execute(sql).fetchall()]
            out[name] = sorted(rows, key=repr)
    return out


def make_home(root: Path, repository: Path) -> tuple[dict[str, str], Path]:
    """A config naming ``repository``, an imported event log and a home; (env, home).

    Both homes read the same repository: its path is stored in the warehouse.
    """
    root.mkdir(parents=True)
    config = root / "symbiotic.yaml"
    config.write_text(f"repositories:\n  - path: {repository}\n    name: standard\n")
    home = root / "home"
    home.mkdir()
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(MODEL_CACHE)
    events = root / "events.jsonl"
    events.write_text("".join(json.dumps(line) + "\n" for line in event_lines()))
    env = clean_env(home, config)
    imported = subprocess.run(
        [str(BIN), "import", str(events), "--strict"], cwd=root, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stdout + imported.stderr
    (home / "dagster").mkdir()
    (home / "dagster" / "dagster.yaml").write_text(DAGSTER_YAML)
    return env, home


def run_to_end(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "run"], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def statuses(out: str) -> list[tuple[str, str]]:
    """(name, ok/failed) rows of the summary table `symbiotic run` prints."""
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) >= 2 and cells[1] in ("ok", "failed"):
            rows.append((cells[0], cells[1]))
    return rows


Condition = Callable[[dg.DagsterInstance], str | None]


def _started_steps(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_START)
    return [r.event_log_entry.step_key or "" for r in records.records]


def during_git_extraction(instance: dg.DagsterInstance) -> str | None:
    for record in instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    ):
        run = record.dagster_run
        if run.job_name.startswith("git_refresh") and _started_steps(instance, run.run_id):
            return run.run_id
    return None


def holding_the_slot_after_git(instance: dg.DagsterInstance) -> str | None:
    info = instance.event_log_storage.get_concurrency_info(POOL)
    for run_id in info.active_run_ids:
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.job_name.startswith("git_refresh"):
            return run_id
    return None


def during_dbt(instance: dg.DagsterInstance) -> str | None:
    for record in instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    ):
        run = record.dagster_run
        if any("dbt" in step for step in _started_steps(instance, run.run_id)):
            time.sleep(3.0)  # inside dbt build, not at its first line
            return run.run_id
    return None


def kill_when(
    env: dict[str, str], cwd: Path, instance: dg.DagsterInstance, condition: Condition
) -> tuple[str, str]:
    """Start `symbiotic run`, SIGKILL it once ``condition`` names a run; (run id, output)."""
    proc = subprocess.Popen(
        [str(BIN), "run"], cwd=cwd, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    killed_run = None
    try:
        deadline = time.monotonic() + 300
        while killed_run is None and proc.poll() is None and time.monotonic() < deadline:
            killed_run = condition(instance)
            if killed_run is None:
                time.sleep(0.25)
        if killed_run is not None:
            proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None and killed_run is None:
            proc.kill()
        out, _ = proc.communicate(timeout=60)
    assert killed_run is not None, f"{condition.__name__} never happened:\n{out}"
    assert proc.returncode == -signal.SIGKILL, out
    return killed_run, out


def test_killed_runs_never_block_and_the_warehouse_equals_a_clean_run(tmp_path: Path) -> None:
    build_standard_repo(tmp_path / "standard")
    clean_env_, clean_home = make_home(tmp_path / "clean", tmp_path / "standard")
    clean = run_to_end(clean_env_, tmp_path / "clean")
    expected = statuses(clean.stdout)
    assert expected, clean.stdout + clean.stderr

    env, home = make_home(tmp_path / "killed", tmp_path / "standard")
    cwd = tmp_path / "killed"
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        killed: list[str] = []
        outputs: list[str] = []
        for condition in (during_git_extraction, holding_the_slot_after_git, during_dbt):
            run_id, out = kill_when(env, cwd, instance, condition)
            run = instance.get_run_by_id(run_id)
            assert run is not None and run.status == dg.DagsterRunStatus.STARTED  # stuck
            killed.append(run_id)
            outputs.append(out)
        # each start after a kill recovered the run the previous process left behind
        for previous, out in zip(killed, outputs[1:], strict=False):
            assert "Recovered" in out and previous[:8] in out, out

        final = run_to_end(env, cwd)
        assert "Recovered" in final.stdout and killed[-1][:8] in final.stdout, final.stdout
        assert final.returncode == clean.returncode, final.stdout + final.stderr
        assert statuses(final.stdout) == expected, final.stdout

        for run_id in killed:
            run = instance.get_run_by_id(run_id)
            assert run is not None and run.status == dg.DagsterRunStatus.FAILURE
        unfinished = instance.get_run_records(
            filters=dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING]
            )
        )
        assert unfinished == []
        info = instance.event_log_storage.get_concurrency_info(POOL)
        assert info.claimed_slots == [] and info.pending_steps == []

    want = warehouse_contents(clean_home / "warehouse.duckdb")
    got = warehouse_contents(home / "warehouse.duckdb")
    assert sorted(got) == sorted(want)
    differing = {
        name: next(
            ((w, g) for w, g in zip(want[name], got[name], strict=False) if w != g),
            f"{len(want[name])} rows vs {len(got[name])}",
        )
        for name in want
        if got[name] != want[name]
    }
    assert differing == {}
    assert sum(len(rows) for rows in want.values()) > 100  # a real comparison, not of empties
