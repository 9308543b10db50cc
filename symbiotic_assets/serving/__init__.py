"""Serving: what readers open. Readers never open the warehouse Dagster writes; they
open the read-only snapshot that :func:`symbiotic_assets.serving.publish.publish_snapshot`
replaces atomically."""
