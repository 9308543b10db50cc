"""A Symbiotic home built the way a user builds one: `symbiotic import`, then `symbiotic run`.

Two repositories made with git (fixed dates and identities) and one JSON-lines event log,
so that every figure the MCP server and the APIs return is known by construction:

``standard`` (``build_standard_repo``, a clone with a reflog), 2024-03-01..03-05 UTC:
  10 reachable commits (2 of them merges), 2 two-parent merges of which 1 conflicts
  (conflict rate 0.5), 6 branch switches, "Add retry backoff" by Bob.
``beta`` (``build_beta`` of analytics_repos, reflog removed), 2024-03-05..03-21 UTC:
  7 reachable commits (1 merge, clean: conflict rate 0.0), branch switches unknown.
Across both, 2024-03-01..03-31: 17 commits, 3 two-parent merges, 1 conflict (1/3).

Events (``events.jsonl``), all in March 2024:
  security    SecurityAgent:security_fix  5 attempts, 4 succeeded -> smoothed 5/7
              RefactoringAgent:refactor   4 attempts, 1 succeeded -> smoothed 2/6
  formatting  FormattingAgent:format      3 attempts, 3 succeeded
  feedback    r-1 security_fix followed succeeded (0.7), r-2 refactor followed failed (0.4)
  sessions    s-1 standard 03-04 09:00 -> 12:00 (quality 80)
  skills      pytest-runner (standard, python): ok, ok, ok, failed; doc-writer (beta): ok
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analytics_repos import build_beta
from gitrepo import GitRepoBuilder, build_standard_repo

from symbiotic_assets.core.config import PROJECT_ROOT

BIN = Path(sys.executable).parent / "symbiotic"
MODEL_CACHE = PROJECT_ROOT / ".pytest_cache" / "symbiotic-models"  # shared with test_search
AS_OF = "2024-03-31"
WINDOW_DAYS = 31  # 2024-03-01 .. 2024-03-31


@dataclass(frozen=True)
class Ecosystem:
    root: Path
    home: Path
    env: dict[str, str]
    commits: dict[str, str]
    beta: GitRepoBuilder


def clean_env(home: Path, config: Path) -> dict[str, str]:
    """The caller's environment without any Symbiotic or Dagster setting, pointed at ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYMBIOTIC_", "DAGSTER_"))}
    env.update(
        SYMBIOTIC_HOME=str(home),
        SYMBIOTIC_CONFIG=str(config),
        COLUMNS="250",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return env


def symbiotic(eco_env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(BIN), *args], cwd=cwd, env=eco_env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"symbiotic {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _attempt(agent: str, strategy: str, issue_type: str, ok: bool, n: int) -> dict:
    return {
        "type": "fix_attempt",
        "issue_type": issue_type,
        "message": f"{issue_type}: finding {n} in src/app.py",
        "file_path": "src/app.py",
        "line_number": n,
        "stage": "bandit" if issue_type == "security" else "ruff-format",
        "agent": agent,
        "strategy": strategy,
        "success": ok,
        "session_id": "s-1",
        "project": "standard",
        "language": "python",
        "timestamp": f"2024-03-{4 + n % 20:02d}T10:{n:02d}:00Z",
    }


def event_lines() -> list[dict]:
    """The event log of the module docstring (one JSON object per line)."""
    lines: list[dict] = []
    n = 0
    for agent, strategy, issue, outcomes in [
        ("SecurityAgent", "security_fix", "security", [True, True, False, True, True]),
        ("RefactoringAgent", "refactor", "security", [False, True, False, False]),
        ("FormattingAgent", "format", "formatting", [True, True, True]),
    ]:
        for ok in outcomes:
            n += 1
            lines.append(_attempt(agent, strategy, issue, ok, n))
    lines += [
        {"type": "feedback", "recommendation_id": "r-1", "issue_type": "security",
         "agent": "SecurityAgent", "strategy": "security_fix", "confidence": 0.7,
         "followed": True, "outcome": "succeeded", "timestamp": "2024-03-10T00:00:00Z"},
        {"type": "feedback", "recommendation_id": "r-2", "issue_type": "security",
         "agent": "RefactoringAgent", "strategy": "refactor", "confidence": 0.4,
         "followed": True, "outcome": "failed", "timestamp": "2024-03-10T01:00:00Z"},
        {"type": "session", "session_id": "s-1", "phase": "start", "project": "standard",
         "language": "python", "timestamp": "2024-03-04T09:00:00Z"},
        {"type": "session", "session_id": "s-1", "phase": "end", "project": "standard",
         "duration_seconds": 10800, "quality_score": 80, "tools_used": ["pytest", "ruff"],
         "timestamp": "2024-03-04T12:00:00Z"},
    ]  # fmt: skip
    for i, ok in enumerate([True, True, True, False]):
        lines.append(
            {
                "type": "skill_invocation",
                "skill": "pytest-runner",
                "session_id": "s-1",
                "project": "standard",
                "language": "python",
                "complexity": "low",
                "completed": True,
                "succeeded": ok,
                "duration_seconds": 30 + i,
                "timestamp": f"2024-03-04T10:{i:02d}:00Z",
            }
        )
    lines.append(
        {
            "type": "skill_invocation",
            "skill": "doc-writer",
            "project": "beta",
            "language": "markdown",
            "complexity": "low",
            "completed": True,
            "succeeded": True,
            "timestamp": "2024-03-20T10:00:00Z",
        }
    )
    return lines


LEARN_SCRIPT = """
import dagster as dg
from symbiotic_assets.cli import prepare_dagster_home
prepare_dagster_home()
from symbiotic_assets.definitions import defs
try:
    job = defs.resolve_job_def("memory_learn")
except Exception:
    print("memory_learn: not defined")
else:
    result = job.execute_in_process(instance=dg.DagsterInstance.get())
    print("memory_learn:", "ok" if result.success else "failed")
"""


def learn_memory(env: dict[str, str], cwd: Path) -> str:
    """Run the ``memory_learn`` job (embeddings, weights, published recommender) if defined.

    `symbiotic run` does not run it yet; the recommender tool falls back to the strategy
    mart until it has run, so the tests pass either way but exercise the real one here.
    """
    proc = subprocess.run(
        [sys.executable, "-c", LEARN_SCRIPT], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0 and "failed" not in proc.stdout, proc.stdout + proc.stderr
    return proc.stdout.strip()


def build_ecosystem(root: Path) -> Ecosystem:
    """Repositories + event log -> `symbiotic import` -> `symbiotic run`, in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    standard = build_standard_repo(root / "repos" / "standard")
    beta, beta_commits = build_beta(root / "repos" / "beta")
    config = root / "symbiotic.yaml"
    config.write_text(
        "repositories:\n"
        "  - path: repos/standard\n    name: standard\n"
        "  - path: repos/beta\n    name: beta\n",
        encoding="utf-8",
    )
    home = root / "home"
    home.mkdir()
    MODEL_CACHE.mkdir(parents=True, exist_ok=True)
    (home / "models").symlink_to(MODEL_CACHE)  # the embedding model, exported once per checkout
    events = root / "events.jsonl"
    events.write_text("".join(json.dumps(line) + "\n" for line in event_lines()), encoding="utf-8")
    env = clean_env(home, config)
    symbiotic(env, root, "import", str(events), "--strict")  # exit 1 if any line is refused
    symbiotic(env, root, "run")
    learn_memory(env, root)
    return Ecosystem(
        root=root,
        home=home,
        env=env,
        commits={**standard["commits"], **beta_commits},
        beta=beta,
    )


ToolCalls = list[tuple[str, str, dict]]


async def call_tools(eco: Ecosystem, calls: ToolCalls) -> dict[str, Any]:
    """Start `symbiotic mcp` (a real subprocess over stdio), drive it with the SDK's client.

    ``calls`` are (label, tool, arguments), made in order in one session. Returns the
    tool listing under "tools" and each ``CallToolResult`` under its label. A test that
    must change the world between calls holds two conversations.
    """
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=str(BIN), args=["mcp"], env=eco.env, cwd=str(eco.root))
    out: dict[str, Any] = {}
    with (eco.root / "mcp-server.log").open("a", encoding="utf-8") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            out["tools"] = (await session.list_tools()).tools
            for label, tool, arguments in calls:
                out[label] = await session.call_tool(tool, arguments)
    return out


def converse(eco: Ecosystem, calls: ToolCalls) -> dict[str, Any]:
    import anyio

    return anyio.run(call_tools, eco, calls)


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)
