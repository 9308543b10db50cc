"""The Dagster code location: every domain's assets, checks, sensors and schedules.

Importing this module must stay cheap (no torch, no dbt parsing): heavy work
happens inside assets and resources, never at import time.
"""

from __future__ import annotations

import dagster as dg

from symbiotic_assets.config import load_settings
from symbiotic_assets.git.definitions import defs as git_defs
from symbiotic_assets.warehouse import WarehouseResource


def build_definitions() -> dg.Definitions:
    settings = load_settings()
    shared = dg.Definitions(
        resources={"warehouse": WarehouseResource(database=settings.warehouse)},
    )
    return dg.Definitions.merge(shared, git_defs)


defs = build_definitions()
