"""``python -m symbiotic_assets.mcp``: the same server as ``symbiotic mcp``.

For agent configurations that name a Python interpreter rather than the console script.
"""

from __future__ import annotations

import typer

from symbiotic_assets.mcp.cli import mcp_command

if __name__ == "__main__":
    typer.run(mcp_command)
