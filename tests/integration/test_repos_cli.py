"""``symbiotic repos list`` and ``repos add`` on bad entries: a status each, never a crash.

The commands run in process (typer's runner) against real repositories built with git,
real symlinks and a real symbiotic.yaml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gitrepo import build_standard_repo
from typer.testing import CliRunner

from symbiotic_assets.cli import app


@pytest.fixture
def runner(symbiotic_home: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "400")  # rich folds long statuses; keep each on one line
    return CliRunner()


def test_list_shows_every_entry_with_its_status(runner: CliRunner, tmp_path: Path):
    builder = build_standard_repo(tmp_path / "alpha")["builder"]
    builder.git("worktree", "add", "-q", str(tmp_path / "alpha-wt"), "-b", "wt")
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "plain").mkdir()
    (tmp_path / "symbiotic.yaml").write_text(
        "repositories:\n  - alpha\n  - loop\n  - gone\n  - plain\n  - alpha/.git\n  - alpha-wt\n"
        "scan:\n  - path: loop\n  - path: plain\n"
    )
    out = runner.invoke(app, ["repos", "list"])
    assert out.exit_code == 0, out.output
    rows = {line.split("│")[1].strip(): line for line in out.output.splitlines() if "│" in line}
    assert "readable" in rows["alpha"]
    assert f"path {tmp_path / 'loop'} is a symlink loop" in rows["loop"]
    assert f"path {tmp_path / 'gone'} does not exist" in rows["gone"]
    assert "is not a git repository" in rows["plain"]
    assert "skipped: same repository as 'alpha'" in rows["git"]  # alpha/.git
    assert "skipped: same repository as 'alpha'" in rows["alpha-wt"]
    assert f"path {tmp_path / 'loop'} is a symlink loop; nothing found" in rows["(scan)"]
    assert sum("(scan)" in line for line in out.output.splitlines()) == 1  # plain/ is fine


def test_list_reports_a_broken_file_by_key(runner: CliRunner, tmp_path: Path):
    (tmp_path / "symbiotic.yaml").write_text("reposotories:\n  - alpha\n")
    out = runner.invoke(app, ["repos", "list"])
    assert out.exit_code == 2
    assert "reposotories: unknown key (did you mean 'repositories'?)" in out.output
    assert "symbiotic" not in out.output.split("error:")[0]  # no fallback listing first


@pytest.mark.parametrize("url", ["https://github.com/org/repo.git", "git@github.com:org/repo.git"])
def test_add_refuses_a_url_as_a_url(runner: CliRunner, tmp_path: Path, url: str):
    out = runner.invoke(app, ["repos", "add", url])
    assert out.exit_code == 2
    assert "URLs are refused: clone it locally first" in " ".join(out.output.split())
    assert "does not exist" not in out.output
    assert not (tmp_path / "symbiotic.yaml").exists()


def test_add_refuses_a_symlink_loop_and_a_second_path_to_one_repository(
    runner: CliRunner, tmp_path: Path
):
    build_standard_repo(tmp_path / "alpha")
    (tmp_path / "loop").symlink_to("loop")
    looped = runner.invoke(app, ["repos", "add", "loop"])
    assert looped.exit_code == 2
    assert "is a symlink loop" in looped.output

    added = runner.invoke(app, ["repos", "add", "alpha"])
    assert added.exit_code == 0, added.output
    again = runner.invoke(app, ["repos", "add", "alpha/.git", "--name", "alpha-git"])
    assert again.exit_code == 2
    assert "is the same repository as 'alpha'" in " ".join(again.output.split())
    assert (tmp_path / "symbiotic.yaml").read_text().count("path:") == 1
