"""The MCP server that lets coding agents ask Symbiotic and tell it what happened.

``symbiotic mcp`` serves it over stdio; see ``docs/mcp.md`` for registration and tools.
"""
