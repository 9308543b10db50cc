"""symbiotic.yaml and the SYMBIOTIC_* environment: typed, with errors that say where.

Repositories are real ones built with git (tests/gitrepo.py); symlink loops are real
symlinks. Every test here failed on the loader before the typed model.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import duckdb
import pytest
from gitrepo import build_standard_repo

from symbiotic_assets.core.config import (
    ENVIRONMENT_VARIABLES,
    PROJECT_ROOT,
    ConfigError,
    add_repository_to_config,
    load_settings,
    path_problem,
    read_environment,
    repository_identity,
)


def write_config(root: Path, text: str) -> Path:
    cfg = root / "symbiotic.yaml"
    cfg.write_text(text, encoding="utf-8")
    return cfg


# -- typed file: unknown keys and wrong types --------------------------------------------


def test_misspelt_top_level_key_is_an_error_not_the_default_repository(
    symbiotic_home: Path, tmp_path: Path
):
    cfg = write_config(tmp_path, "reposotories:\n  - path: alpha\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    message = str(err.value)
    assert str(cfg) in message
    assert "reposotories: unknown key (did you mean 'repositories'?)" in message
    assert "expected one of: repositories, scan, settings" in message


def test_wrong_type_names_file_key_path_and_expectation(symbiotic_home: Path, tmp_path: Path):
    cfg = write_config(tmp_path, "scan:\n  - path: code\n  - path: more\n    depth: two\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert str(err.value) == f"{cfg}: scan[1].depth: expected a whole number, got 'two'"


def test_every_problem_is_listed_at_once(symbiotic_home: Path, tmp_path: Path):
    cfg = write_config(
        tmp_path,
        "repositories:\n  - path: a\n    nmae: x\n  - [1, 2]\n"
        "settings:\n  merge_workers: -1\n  stale_branch_days: yes\n",
    )
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    lines = str(err.value).splitlines()
    assert lines[0] == f"{cfg}: 4 problems:"
    assert sorted(line.strip() for line in lines[1:]) == [
        "repositories[0].nmae: unknown key (did you mean 'name'?); "
        "expected one of: path, name, default_branch",
        "repositories[1]: expected a path or a mapping with 'path', got [1, 2]",
        "settings.merge_workers: expected a number >= 0, got -1",
        "settings.stale_branch_days: expected a whole number, got the boolean True",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- alpha\n", "expected a mapping at the top level, got ['alpha']"),
        ("repositories: alpha\n", "repositories: expected a list, got 'alpha'"),
        ("repositories:\n  - name: x\n", "repositories[0].path: required key missing"),
        ("repositories:\n  - path: a\n    name: 'a b'\n", "repositories[0].name: name 'a b' must"),
        ("settings: 3\n", "settings: expected a mapping, got 3"),
        (
            "scan:\n  - ~no-such-user-x/code\n",
            "scan[0].path: '~no-such-user-x/code': cannot expand",
        ),
    ],
)
def test_shapes_that_are_refused(symbiotic_home: Path, tmp_path: Path, text: str, expected: str):
    cfg = write_config(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(f"{cfg}: {expected}")):
        load_settings(cfg)


def test_valid_file_keeps_its_meaning(
    symbiotic_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "conf").mkdir()
    cfg = write_config(
        tmp_path / "conf",
        "repositories:\n"
        "  - ../alpha\n"  # shorthand, relative to the file
        "  - path: /srv/beta\n    name: 2024\n    default_branch: develop\n"
        "scan:\n  - path: ../code\n"
        "settings:\n  stale_branch_days: 7\n  merge_workers: 3\n",
    )
    s = load_settings(cfg)
    assert [(r.name, r.path, r.default_branch) for r in s.repositories] == [
        ("alpha", tmp_path / "alpha", None),
        ("2024", Path("/srv/beta"), "develop"),
    ]
    assert [(x.path, x.depth) for x in s.scan] == [(tmp_path / "code", 2)]
    assert (s.stale_branch_days, s.merge_workers) == (7, 3)
    assert s.home == symbiotic_home.resolve()
    assert s.warehouse == str(symbiotic_home.resolve() / "warehouse.duckdb")
    assert s.config_file == cfg

    # the environment wins over the file and adds repositories
    monkeypatch.setenv("SYMBIOTIC_WAREHOUSE", "md:team")
    monkeypatch.setenv("SYMBIOTIC_REPOSITORIES", os.pathsep.join(["/srv/gamma", ""]))
    s = load_settings(cfg)
    assert s.warehouse == "md:team"
    assert [r.name for r in s.repositories] == ["alpha", "2024", "gamma"]


def test_empty_blocks_and_no_file_fall_back_to_this_project(symbiotic_home: Path, tmp_path: Path):
    cfg = write_config(tmp_path, "repositories:\nscan:\nsettings:\n")
    for settings in (load_settings(cfg), load_settings()):
        assert [(r.name, r.path) for r in settings.repositories] == [("symbiotic", PROJECT_ROOT)]
        assert settings.stale_branch_days == 30


def test_symbiotic_config_pointing_nowhere(symbiotic_home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SYMBIOTIC_CONFIG", "missing.yaml")
    with pytest.raises(ConfigError, match=r"SYMBIOTIC_CONFIG='missing.yaml': no such file"):
        load_settings()


# -- URLs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["https://github.com/org/repo.git", "git@github.com:org/repo.git"])
def test_url_in_the_file_is_refused_as_a_url(symbiotic_home: Path, tmp_path: Path, url: str):
    cfg = write_config(tmp_path, f"repositories:\n  - {url}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert f"repositories[0].path: {url!r} is a URL; URLs are refused: clone it locally" in str(
        err.value
    )


def test_url_in_symbiotic_repositories_is_refused_not_split(
    symbiotic_home: Path, monkeypatch: pytest.MonkeyPatch
):
    # split on ':' this used to become two missing paths, 'https' and '//github.com/...'
    monkeypatch.setenv("SYMBIOTIC_REPOSITORIES", "https://github.com/org/repo.git")
    with pytest.raises(ConfigError, match=r"SYMBIOTIC_REPOSITORIES: .* is a URL; URLs are refused"):
        load_settings()


# -- symlink loops --------------------------------------------------------------------------


def test_symlink_loop_in_a_configured_path_is_a_status_not_a_crash(
    symbiotic_home: Path, tmp_path: Path
):
    (tmp_path / "loop").symlink_to("loop")
    build_standard_repo(tmp_path / "alpha")
    cfg = write_config(tmp_path, "repositories:\n  - loop\n  - alpha\n")
    settings = load_settings(cfg)  # Path.resolve raised RuntimeError here
    specs = settings.all_repositories()
    assert [s.name for s in specs] == ["loop", "alpha"]
    assert path_problem(specs[0].path) == f"path {tmp_path / 'loop'} is a symlink loop"
    assert path_problem(specs[1].path) is None
    assert path_problem(tmp_path / "nowhere") == f"path {tmp_path / 'nowhere'} does not exist"


def test_scan_survives_symlink_loops_and_cycles(symbiotic_home: Path, tmp_path: Path):
    code = tmp_path / "code"
    build_standard_repo(code / "team" / "alpha")
    (code / "self").symlink_to("self")  # a loop
    (code / "team" / "up").symlink_to("..")  # a cycle back to code/
    cfg = write_config(tmp_path, "scan:\n  - path: code\n    depth: 4\n")
    specs = load_settings(cfg).all_repositories()
    assert [(s.name, s.path.resolve()) for s in specs] == [
        ("alpha", (code / "team" / "alpha").resolve())
    ]


# -- one repository, several paths ----------------------------------------------------------


@pytest.fixture
def alpha_with_worktree(tmp_path: Path) -> tuple[Path, Path]:
    builder = build_standard_repo(tmp_path / "alpha")["builder"]
    builder.git("worktree", "add", "-q", str(tmp_path / "alpha-wt"), "-b", "wt")
    return tmp_path / "alpha", tmp_path / "alpha-wt"


def test_worktree_its_git_dir_and_linked_worktree_are_one_repository(
    symbiotic_home: Path, tmp_path: Path, alpha_with_worktree: tuple[Path, Path]
):
    alpha, linked = alpha_with_worktree
    common = (alpha / ".git").resolve()
    assert repository_identity(alpha) == repository_identity(alpha / ".git") == common
    assert repository_identity(linked) == common
    assert repository_identity(tmp_path) is None

    cfg = write_config(tmp_path, "repositories:\n  - alpha\n  - alpha/.git\n  - alpha-wt\n")
    settings = load_settings(cfg)
    kept, skipped = settings.repository_listing()
    assert [(s.name, s.path) for s in kept] == [("alpha", alpha)]
    assert [(s.spec.path, s.same_as.name) for s in skipped] == [
        (alpha / ".git", "alpha"),
        (linked, "alpha"),
    ]
    assert skipped[0].reason == (
        f"{alpha / '.git'} is the same repository as 'alpha' ({alpha}; "
        f"git directory {common}); read once"
    )
    # a scan finding the same repository again does not add it either
    write_config(tmp_path, "repositories:\n  - alpha/.git\nscan:\n  - path: .\n")
    assert [s.path for s in load_settings(cfg).all_repositories()] == [alpha / ".git"]


def test_cross_repository_totals_count_a_repository_once(
    symbiotic_home: Path, tmp_path: Path, alpha_with_worktree: tuple[Path, Path]
):
    from symbiotic_assets.git.extract import refresh_repository

    alpha, _ = alpha_with_worktree
    cfg = write_config(tmp_path, "repositories:\n  - alpha\n  - alpha/.git\n")
    warehouse = tmp_path / "w.duckdb"
    for spec in load_settings(cfg).all_repositories():
        refresh_repository(str(warehouse), spec)
    expected = subprocess.run(
        ["git", "-C", str(alpha), "rev-list", "--count", "--all"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (total,) = con.execute("SELECT count(*) FROM git.commits WHERE is_reachable").fetchone()
    assert total == int(expected)


def test_add_refuses_a_second_path_to_a_configured_repository(
    symbiotic_home: Path, tmp_path: Path, alpha_with_worktree: tuple[Path, Path]
):
    alpha, linked = alpha_with_worktree
    cfg = tmp_path / "symbiotic.yaml"
    add_repository_to_config(cfg, alpha)
    before = cfg.read_text()
    for other in (alpha / ".git", linked):
        with pytest.raises(ConfigError, match=r"is the same repository as 'alpha'.*not added"):
            add_repository_to_config(cfg, other, name="again")
    assert cfg.read_text() == before


def test_add_refuses_urls_and_does_not_rewrite_a_broken_file(tmp_path: Path):
    cfg = write_config(tmp_path, "reposotories: []\n")
    with pytest.raises(ConfigError, match="reposotories: unknown key"):
        add_repository_to_config(cfg, tmp_path)
    assert cfg.read_text() == "reposotories: []\n"
    with pytest.raises(ConfigError, match="is a URL; URLs are refused"):
        add_repository_to_config(tmp_path / "new.yaml", "https://github.com/org/repo")
    assert not (tmp_path / "new.yaml").exists()


# -- the environment is read and documented in one place -----------------------------------


def test_read_environment_from_a_mapping(tmp_path: Path):
    env = read_environment(
        {
            "SYMBIOTIC_HOME": str(tmp_path / "h"),
            "SYMBIOTIC_REPOSITORIES": os.pathsep.join(["a", " ", "b"]),
            "SYMBIOTIC_WAREHOUSE": " ",
        }
    )
    assert env.home == tmp_path / "h"
    assert env.repositories == ["a", "b"]
    assert env.warehouse is None  # blank means unset, not a file called ' '
    assert read_environment({}).home == Path(".symbiotic").resolve()


def test_every_symbiotic_variable_is_registered_documented_and_read_in_config():
    used: dict[str, set[str]] = {}
    for folder in ("symbiotic_assets", "benchmarks"):
        for source in (PROJECT_ROOT / folder).rglob("*.py"):
            for name in re.findall(r"SYMBIOTIC_[A-Z_]+", source.read_text(encoding="utf-8")):
                used.setdefault(name, set()).add(source.relative_to(PROJECT_ROOT).as_posix())
    assert set(used) <= set(ENVIRONMENT_VARIABLES), "register new variables in config.py"
    docs = (PROJECT_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    undocumented = [name for name in ENVIRONMENT_VARIABLES if f"`{name}`" not in docs]
    assert not undocumented


# Files that still read a SYMBIOTIC_* variable themselves (directly or through a *_ENV
# constant), pending their owners' edits: read_environment() has mcp_token and merge_git.
PENDING_DIRECT_READS: set[str] = set()


def test_symbiotic_variables_are_read_only_in_config():
    read = re.compile(
        r"""(getenv\(|environ\.get\(|environ\[)\s*(["']SYMBIOTIC_|[A-Z_]+_ENV\b)(?![^\n]*\]\s*=[^=])"""
    )
    readers = sorted(
        source.relative_to(PROJECT_ROOT).as_posix()
        for source in (PROJECT_ROOT / "symbiotic_assets").rglob("*.py")
        if read.search(source.read_text(encoding="utf-8"))
    )
    assert set(readers) - PENDING_DIRECT_READS <= {"symbiotic_assets/core/config.py"}


def test_environment_read_never_fails_on_an_unrelated_variable(
    symbiotic_home: Path, monkeypatch: pytest.MonkeyPatch
):
    from symbiotic_assets.core.config import mcp_token
    from symbiotic_assets.core.config import symbiotic_home as home
    from symbiotic_assets.core.embedding import default_cache_dir

    monkeypatch.setenv("SYMBIOTIC_REPOSITORIES", "https://github.com/org/repo.git")
    monkeypatch.setenv("SYMBIOTIC_MCP_TOKEN", "s3cret-token-0123456789")
    assert home() == symbiotic_home.resolve()
    assert default_cache_dir() == symbiotic_home.resolve() / "models"
    assert mcp_token() == "s3cret-token-0123456789"
