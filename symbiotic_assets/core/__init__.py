"""The platform core: what more than one domain needs, free of Dagster except `resources`.

Settings (`config`), DuckDB connections and table definitions (`warehouse`), the embedder
and its cache (`embedding`), the vector index (`vectors`), versioned publishing of read-only
artifacts (`publish`) and the Dagster resources over them (`resources`). Nothing here imports
a domain package (`git`, `memory`, `search`, `analytics`, `serving`).
"""
