"""The ``symbiotic`` command as a user runs it: a real process, real repositories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
from gitrepo import build_standard_repo

BIN = Path(sys.executable).parent / "symbiotic"


def symbiotic(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYMBIOTIC_", "DAGSTER_"))}
    env.update(SYMBIOTIC_HOME=str(home), COLUMNS="250", HF_HUB_OFFLINE="1")
    return env


def test_help_explains_the_commands(tmp_path: Path):
    out = symbiotic("--help", cwd=tmp_path, env=clean_env(tmp_path / "h"))
    assert out.returncode == 0
    for word in ("run", "repos", "symbiotic.yaml"):
        assert word in out.stdout


def test_repos_add_list_and_run(tmp_path: Path):
    build_standard_repo(tmp_path / "alpha")
    (tmp_path / "not-a-repo").mkdir()
    env = clean_env(tmp_path / "home")

    added = symbiotic("repos", "add", "alpha", cwd=tmp_path, env=env)
    assert added.returncode == 0, added.stdout + added.stderr
    assert "added alpha" in added.stdout
    dup = symbiotic("repos", "add", "alpha", cwd=tmp_path, env=env)
    assert dup.returncode == 2 and "already configured" in dup.stdout
    refused = symbiotic("repos", "add", "not-a-repo", cwd=tmp_path, env=env)
    assert refused.returncode == 2 and "is not a git repository" in refused.stdout

    # a broken entry next to a good one: the good one still materializes
    cfg = tmp_path / "symbiotic.yaml"
    cfg.write_text(cfg.read_text() + f"- path: {tmp_path / 'gone'}\n  name: gone\n")
    listed = symbiotic("repos", "list", cwd=tmp_path, env=env)
    assert listed.returncode == 0
    assert "alpha" in listed.stdout and "does not exist" in listed.stdout

    run = symbiotic("run", cwd=tmp_path, env=env)
    assert run.returncode == 1, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    alpha_line = next(line for line in lines if "alpha" in line and "ok" in line)
    assert "10" in alpha_line  # commits
    assert any("gone" in line and "failed" in line and "does not exist" in line for line in lines)
    with duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM git.commits").fetchone() == (10,)
        assert con.execute("SELECT count(*) FROM git.merges WHERE has_conflict").fetchone() == (1,)

    # the Dagster instance under SYMBIOTIC_HOME recorded the runs the UI will show
    assert (tmp_path / "home" / "dagster" / "dagster.yaml").is_file()
    assert any((tmp_path / "home" / "dagster").iterdir())

    only = symbiotic("run", "--repository", "alpha", cwd=tmp_path, env=env)
    assert only.returncode == 0, only.stdout + only.stderr
    unknown = symbiotic("run", "--repository", "nope", cwd=tmp_path, env=env)
    assert unknown.returncode == 2 and "unknown repositories nope" in unknown.stdout
