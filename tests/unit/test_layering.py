"""The package's layers, checked on every import statement (also those inside functions).

core        -> nothing of ours but core
events      -> core
domains     -> core, events, and the domains listed in ALLOWED (no cycles)
above       -> anything: orchestration, api, mcp, cli, definitions
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "symbiotic_assets"
TOP = {"api", "mcp", "cli", "definitions", "orchestration", "__init__"}
# what each domain may import besides core and events; read as "depends on"
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "events": set(),
    "git": set(),
    "memory": set(),
    "analytics": set(),
    "search": {"git"},
    "serving": {"analytics"},
}


def _layer(module: str) -> str:
    """symbiotic_assets.<layer>[.rest] -> layer (a top-level module counts as its name)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports() -> list[tuple[str, str, int]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("symbiotic_assets."):
                    found.append((module, name, node.lineno))
    return found


def test_no_package_imports_upward_or_sideways_beyond_what_is_allowed() -> None:
    bad = []
    for module, target, line in _imports():
        src, dst = _layer(module), _layer(target)
        if src in TOP or src == dst or dst in {"core"}:
            continue
        if dst == "events" and src != "core":
            continue
        if dst in TOP or dst not in ALLOWED.get(src, set()):
            bad.append(f"{module}:{line} imports {target}")
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_core_is_free_of_domains_and_dagster_outside_resources() -> None:
    for path in (PACKAGE / "core").glob("*.py"):
        if path.name == "resources.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                for m in mods:
                    assert not m.startswith("dagster"), f"core/{path.name} imports {m}"


def test_the_allowed_graph_has_no_cycle() -> None:
    seen: set[str] = set()

    def visit(node: str, stack: tuple[str, ...]) -> None:
        assert node not in stack, f"cycle: {' -> '.join((*stack, node))}"
        if node in seen:
            return
        for nxt in ALLOWED.get(node, set()):
            visit(nxt, (*stack, node))
        seen.add(node)

    for layer in ALLOWED:
        visit(layer, ())
