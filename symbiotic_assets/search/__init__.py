"""Semantic search over git history: commit texts, embeddings, a hybrid ranker learned from clicks.

Readers (``api.semantic_search``, the CLI, the MCP server) use only the published
serving index under ``$SYMBIOTIC_HOME/published/search``; Dagster assets build it.
"""
