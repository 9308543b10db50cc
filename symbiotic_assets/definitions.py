"""The Dagster code location: every domain's assets, checks, sensors and schedules.

Importing this module must stay cheap (no torch, no dbt parsing): heavy work
happens inside assets and resources, never at import time. It reads no configuration
either: the ``settings`` resource reads ``symbiotic.yaml`` and ``SYMBIOTIC_*`` when a
run, sensor or schedule asks, and the ``warehouse`` resource takes its path from it.
"""

from __future__ import annotations

import dagster as dg

from symbiotic_assets.analytics import definitions as analytics_definitions
from symbiotic_assets.core.resources import WarehouseResource, settings_resource
from symbiotic_assets.git import definitions as git_definitions
from symbiotic_assets.memory import definitions as memory_definitions
from symbiotic_assets.orchestration import refresh_changed, run_recovery
from symbiotic_assets.search import definitions as search_definitions
from symbiotic_assets.serving import definitions as serving_definitions


def build_definitions() -> dg.Definitions:
    """Every domain's definitions, sharing one ``settings`` and one ``warehouse`` resource.

    The warehouse's ``database`` is left empty: it is the settings' warehouse, resolved
    when a run starts (a run configured with another ``settings.home`` or
    ``config_file`` gets that warehouse too; ``warehouse.database`` overrides it).
    """
    shared = dg.Definitions(
        resources={
            "warehouse": WarehouseResource(settings=settings_resource),
            "settings": settings_resource,
        },
    )
    # Domains are imported as modules, not as `defs` objects: Dagster refuses a code
    # location module holding more than one Definitions object at module scope.
    return dg.Definitions.merge(
        shared,
        git_definitions.defs,
        memory_definitions.defs,
        search_definitions.defs,
        analytics_definitions.defs,
        serving_definitions.defs,
        run_recovery.defs,  # fails runs whose process died, frees their slots
        dg.Definitions(jobs=[refresh_changed.git_refresh_changed_job]),
    )


defs = build_definitions()
