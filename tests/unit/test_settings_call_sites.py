"""Dagster code takes its settings from the ``settings`` resource, never ``load_settings()``.

A module that builds Dagster definitions (it imports ``dagster`` or a ``dagster_*``
package) must not call ``load_settings`` nor a helper that calls it (``default_store_path``,
``default_index_root``, ...): such a call reads the process's configuration, so a test or
a deployment that hands the run other settings would be ignored. The behaviour itself
is checked in tests/integration/test_settings_resource.py; this catches a call site that
goes back to the old way before any run does.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "symbiotic_assets"
ROOT = PACKAGE.parent

# Where the settings resource itself reads the settings: the one legitimate call.
RESOURCE_MODULE = "symbiotic_assets/core/resources.py"

# Modules that import Dagster and still call load_settings, each for a stated reason.
ALLOWED = {
    # The `symbiotic` command line, not a Dagster call site: it reads the settings to
    # list repositories, plan which changed and print its summary around the jobs it
    # runs in process (those jobs read the same environment through the resource).
    "symbiotic_assets/cli.py",
    # prepare_dbt_manifest(): `dbt parse` when the code location loads without a manifest,
    # before any run or resource exists; the path only fills dbt's profile for parsing.
    "symbiotic_assets/analytics/project.py",
}
# Modules being moved to the resource (none left: search/assets.py moved).
PENDING: set[str] = set()

# Entry points whose functions read the settings on purpose; their function names
# (run, serve, ...) are not helpers a Dagster module would call.
ENTRY_POINTS = ("symbiotic_assets/cli.py", "symbiotic_assets/mcp/")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _imports_dagster(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            mods = [node.module or ""]
        else:
            continue
        if any(m == "dagster" or m.startswith(("dagster.", "dagster_")) for m in mods):
            return True
    return False


def _names_used(tree: ast.AST) -> list[tuple[str, int]]:
    """Every name a module refers to: plain names, attributes, and imported names."""
    used: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.append((node.id, node.lineno))
        elif isinstance(node, ast.Attribute):
            used.append((node.attr, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            used.extend((a.name, node.lineno) for a in node.names)
    return used


def _settings_readers(trees: Mapping[str, ast.AST]) -> set[str]:
    """``load_settings`` and the library functions that call it directly."""
    readers = {"load_settings"}
    for rel, tree in trees.items():
        if rel == RESOURCE_MODULE or rel.startswith(ENTRY_POINTS):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.name != "load_settings"
                and any(name == "load_settings" for name, _ in _names_used(node))
            ):
                readers.add(node.name)
    return readers


def _violations(trees: Mapping[str, ast.AST], readers: set[str]) -> dict[str, list[str]]:
    """Per Dagster module: each place it reads the settings behind the resource's back."""
    found: dict[str, list[str]] = {}
    for rel, tree in trees.items():
        if rel == RESOURCE_MODULE or not _imports_dagster(tree):
            continue
        hits = sorted({f"{rel}:{line} uses {name}" for name, line in _names_used(tree)
                       if name in readers})  # fmt: skip
        if hits:
            found[rel] = hits
    return found


def _package_trees() -> dict[str, ast.AST]:
    return {
        _rel(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))
    }


def test_dagster_modules_take_settings_from_the_resource() -> None:
    trees = _package_trees()
    found = _violations(trees, _settings_readers(trees))
    bad = [hit for rel, hits in found.items() if rel not in ALLOWED | PENDING for hit in hits]
    assert not bad, (
        "Dagster code reads settings without the `settings` resource (take a "
        "`settings: SettingsResource` parameter and call settings.get_settings()):\n"
        + "\n".join(bad)
    )


def test_allow_list_names_existing_modules_that_still_need_it() -> None:
    trees = _package_trees()
    found = _violations(trees, _settings_readers(trees))
    for rel in ALLOWED | PENDING:
        assert rel in trees, f"{rel} is on the allow-list but does not exist any more"
    stale = sorted(rel for rel in ALLOWED if rel not in found)
    assert not stale, f"no longer read settings directly, take them off ALLOWED: {stale}"


def test_the_helpers_that_read_settings_are_recognised() -> None:
    """The check is not vacuous: the package's own settings-reading helpers are found."""
    readers = _settings_readers(_package_trees())
    assert {"default_store_path", "default_recommender_root", "default_index_root"} <= readers


def test_each_way_of_reading_settings_is_caught() -> None:
    sources = {
        "direct": "import dagster as dg\n"
        "from symbiotic_assets.core.config import load_settings\n"
        "def f():\n    return load_settings().home\n",
        "aliased": "import dagster as dg\n"
        "from symbiotic_assets.core.config import load_settings as ls\n",
        "attribute": "from dagster import asset\n"
        "from symbiotic_assets.core import config\n"
        "def f():\n    return config.load_settings()\n",
        "helper": "import dagster_dbt\n"
        "from symbiotic_assets.events.store import default_store_path\n"
        "def f():\n    return default_store_path()\n",
        "in_function": "def f():\n    import dagster as dg\n"
        "    from symbiotic_assets.core.config import load_settings\n",
    }
    trees = {f"symbiotic_assets/x/{k}.py": ast.parse(v) for k, v in sources.items()}
    found = _violations(trees, {"load_settings", "default_store_path"})
    assert sorted(found) == sorted(trees)
    # the same code without Dagster is an entry point's business, not this check's
    plain = {"symbiotic_assets/x/api.py": ast.parse(sources["direct"].split("\n", 1)[1])}
    assert _violations(plain, {"load_settings"}) == {}
