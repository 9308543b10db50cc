"""Fix-strategy memory: the capture store (``store``, ``models``, ``importer``, ``cli``),
the issue embedder and the recommender.

Kept empty of imports so that loading one part (the CLI, a Dagster asset) does not
load the others.
"""
