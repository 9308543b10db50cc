"""`symbiotic run` over several repositories: a second run with nothing changed does no work.

Real process, real repositories built with git, the real model (offline), real dbt. The
proof is in what the run leaves behind: the Dagster run records, the marts'
materializations, the warehouse's extraction stamps and the published files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from gitrepo import build_standard_repo

BIN = Path(sys.executable).parent / "symbiotic"
VELOCITY = dg.AssetKey(["analytics", "fct_commit_velocity_daily"])


def symbiotic(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900, check=False)  # fmt: skip


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYMBIOTIC_", "DAGSTER_"))}
    env.update(SYMBIOTIC_HOME=str(home), COLUMNS="250", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")  # fmt: skip
    return env


def _state(home: Path) -> dict[str, object]:
    """Everything a no-op run must leave untouched."""
    published = home / "published"
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        stamps = con.execute(
            "SELECT repository, extracted_at, commit_count FROM git.repositories ORDER BY 1"
        ).fetchall()
        vectors = con.execute("SELECT count(*) FROM search.commit_embeddings").fetchone()
    return {
        "stamps": stamps,
        "vectors": vectors,
        "snapshot_mtime": (published / "warehouse.duckdb").stat().st_mtime_ns,
        "recommender": (published / "recommender" / "CURRENT").read_text(),
    }


def _runs_and_marts(home: Path) -> tuple[dict[str, int], int]:
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs: dict[str, int] = {}
        for record in instance.get_run_records():
            name = record.dagster_run.job_name
            runs[name] = runs.get(name, 0) + 1
        marts = len(instance.fetch_materializations(VELOCITY, limit=100).records)
    return runs, marts


@pytest.mark.slow
def test_second_run_of_three_repositories_does_nothing(tmp_path: Path):
    for name in ("alpha", "beta", "gamma"):
        build_standard_repo(tmp_path / name)
    (tmp_path / "symbiotic.yaml").write_text(
        "repositories:\n"
        + "".join(f"  - path: {n}\n    name: {n}\n" for n in ("alpha", "beta", "gamma"))
    )
    home = tmp_path / "home"
    env = clean_env(home)

    first = symbiotic("run", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 repositories checked" in first.stdout and "3 changed" in first.stdout
    before = _state(home)
    runs_before, marts_before = _runs_and_marts(home)
    assert runs_before.get("git_refresh_changed") == 1 and marts_before == 1
    assert len(before["stamps"]) == 3  # type: ignore[arg-type]

    second = symbiotic("run", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 changed, 3 unchanged" in second.stdout
    assert _state(home) == before  # no extraction, no vector, no re-publish
    runs_after, marts_after = _runs_and_marts(home)
    assert runs_after.get("git_refresh_changed") == 1  # no git run was launched
    assert marts_after == marts_before  # dbt did not build
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        obs = instance.fetch_observations(VELOCITY, limit=1).records[0].asset_observation
        assert obs is not None and obs.metadata["skipped"].value is True

    # one repository moves: only it is refreshed, and the marts and snapshot follow
    subprocess.run(["git", "-C", str(tmp_path / "beta"), "tag", "v2"], check=True)
    third = symbiotic("run", cwd=tmp_path, env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "1 changed, 2 unchanged" in third.stdout
    after = _state(home)
    stamps = {r[0]: r[1] for r in after["stamps"]}  # type: ignore[union-attr]
    old = {r[0]: r[1] for r in before["stamps"]}  # type: ignore[union-attr]
    assert stamps["alpha"] == old["alpha"] and stamps["gamma"] == old["gamma"]
    assert stamps["beta"] > old["beta"]
    assert after["snapshot_mtime"] != before["snapshot_mtime"]
    assert _runs_and_marts(home)[1] == marts_before + 1
