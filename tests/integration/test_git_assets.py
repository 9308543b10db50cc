"""The git assets run by Dagster itself, and the whole collection on this project's own history."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from gitrepo import build_standard_repo

from symbiotic_assets.core.config import PROJECT_ROOT, RepositorySpec
from symbiotic_assets.core.resources import SettingsResource


def load_defs() -> dg.Definitions:
    from symbiotic_assets.definitions import build_definitions

    return build_definitions()


def test_code_location_loads(symbiotic_home: Path):
    defs = load_defs()
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"git/commits", "git/commit_files", "git/refs", "git/ref_events", "git/merges",
            "git/repositories"} <= keys  # fmt: skip
    assert "git/metrics" not in keys  # commit velocity is defined once, by the dbt marts
    assert defs.resolve_job_def("git_refresh") is not None


def test_partitions_fail_alone_and_checks_pass(symbiotic_home: Path, tmp_path: Path, monkeypatch):
    build_standard_repo(tmp_path / "good")
    cfg = tmp_path / "symbiotic.yaml"
    cfg.write_text(
        "repositories:\n  - path: good\n    name: good\n  - path: missing\n    name: missing\n"
    )
    monkeypatch.setenv("SYMBIOTIC_CONFIG", str(cfg))
    defs = load_defs()
    job = defs.resolve_job_def("git_refresh")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("repositories", ["good", "missing"])
        bad = job.execute_in_process(
            partition_key="missing", instance=instance, raise_on_error=False
        )
        good = job.execute_in_process(partition_key="good", instance=instance, raise_on_error=False)
        assert good.success
        assert not bad.success
        failure = next(e for e in bad.all_events if e.is_step_failure)
        from symbiotic_assets.cli import root_cause

        message = root_cause(failure.step_failure_data.error)
        assert "repository 'missing'" in message and "does not exist" in message

        checks = [e for e in good.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        outcomes = {e.event_specific_data.check_name: e.event_specific_data.passed for e in checks}
        assert outcomes == {
            "commit_count_matches_git": True,
            "no_duplicate_commits": True,
            "no_duplicate_ref_events": True,
            "no_duplicate_merges": True,
            "churn_known": True,
        }
        mats = instance.fetch_materializations(dg.AssetKey(["git", "commits"]), limit=5).records
        assert len(mats) == 1 and mats[0].partition_key == "good"
        assert mats[0].asset_materialization.metadata["new_commits"].value == 10

    with duckdb.connect(str(symbiotic_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute(
            "SELECT repository, count(*) FROM git.commits GROUP BY 1"
        ).fetchall() == [("good", 10)]


def test_sensor_registers_new_repositories(symbiotic_home: Path, tmp_path: Path, monkeypatch):
    build_standard_repo(tmp_path / "scanroot" / "one")
    build_standard_repo(tmp_path / "scanroot" / "group" / "two")
    cfg = tmp_path / "symbiotic.yaml"
    cfg.write_text("scan:\n  - path: scanroot\n    depth: 2\n")
    monkeypatch.setenv("SYMBIOTIC_CONFIG", str(cfg))
    defs = load_defs()
    sensor = defs.resolve_sensor_def("repository_discovery_sensor")
    settings = {"settings": SettingsResource()}  # called directly, the sensor needs its resource
    with dg.instance_for_test() as instance:
        result = sensor(dg.build_sensor_context(instance=instance, resources=settings))
        assert sorted(r.partition_key for r in result.run_requests) == ["one", "two"]
        assert result.dynamic_partitions_requests[0].partition_keys == ["two", "one"] or sorted(
            result.dynamic_partitions_requests[0].partition_keys
        ) == ["one", "two"]
        instance.add_dynamic_partitions("repositories", ["one", "two"])
        again = sensor(dg.build_sensor_context(instance=instance, resources=settings))
        assert again.run_requests == [] or again.run_requests is None or not again.run_requests


def _git_log_numstat(path: Path) -> dict[str, tuple[int, int, int]]:
    """Per commit (files, insertions, deletions) read by a separate, simple parse of git log."""
    out = subprocess.run(
        ["git", "-C", str(path), "log", "--branches", "--remotes", "--tags", "HEAD", "--numstat",
         "-M", "--format=@@%H"],
        capture_output=True, check=True,
    ).stdout.decode("utf-8", errors="replace")  # fmt: skip
    stats: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    current = None
    for line in out.splitlines():
        if line.startswith("@@"):
            current = line[2:]
            stats[current]
        elif line.strip() and current:
            ins, dels, _ = line.split("\t", 2)
            stats[current][0] += 1
            if ins != "-":
                stats[current][1] += int(ins)
                stats[current][2] += int(dels)
    return {h: (v[0], v[1], v[2]) for h, v in stats.items()}


@pytest.mark.slow
def test_own_history_matches_git_log(tmp_path: Path):
    # the suite runs from a clone (as CI does); the project's own history is the subject
    assert (PROJECT_ROOT / ".git").exists(), f"{PROJECT_ROOT} is not a git checkout"
    from symbiotic_assets.git.extract import detect_merge_conflicts, refresh_repository

    spec = RepositorySpec("symbiotic", PROJECT_ROOT)
    warehouse = str(tmp_path / "own.duckdb")
    r = refresh_repository(warehouse, spec)
    detect_merge_conflicts(warehouse, spec)
    expected = _git_log_numstat(PROJECT_ROOT)
    with duckdb.connect(warehouse, read_only=True) as con:
        got = {
            h: (f, i, d)
            for h, f, i, d in con.execute(
                "SELECT hash, files_changed, insertions, deletions FROM git.commits WHERE is_reachable"
            ).fetchall()
        }
        per_day = dict(
            con.execute(
                "SELECT strftime(authored_at, '%Y-%m-%d'), count(*) FROM git.commits "
                "WHERE is_reachable GROUP BY 1"
            ).fetchall()
        )
    assert r.reachable_commits == len(expected) > 0
    assert got == expected
    days = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "log", "--branches", "--remotes", "--tags", "HEAD",
         "--date=format-local:%Y-%m-%d", "--format=%ad"],
        capture_output=True, text=True, check=True, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
    ).stdout.split()  # fmt: skip
    expected_days: dict[str, int] = defaultdict(int)
    for d in days:
        expected_days[d] += 1
    assert per_day == dict(expected_days)


def test_code_location_validates_and_imports_cheaply(symbiotic_home: Path):
    """Load the workspace the way `dagster dev` does; importing must not pull in torch."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env["DAGSTER_HOME"] = str(symbiotic_home / "dagster")
    Path(env["DAGSTER_HOME"]).mkdir(parents=True)
    bin_dir = Path(sys.executable).parent
    out = subprocess.run(
        [str(bin_dir / "dagster"), "definitions", "validate", "-w", str(PROJECT_ROOT / "workspace.yaml")],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, symbiotic_assets.definitions; "
         "print(sorted(m for m in ('torch', 'sentence_transformers', 'onnxruntime') if m in sys.modules))"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "[]"
