"""Analytics in Dagster: the dbt models, the daily job that refreshes and publishes them.

Importing this module is cheap. ``defs`` is built on first access (PEP 562), because
building it reads the dbt manifest, preparing it once with ``dbt parse`` when missing
(``make dbt-manifest`` does that ahead of time). The code location adds it with
``dg.Definitions.merge(..., analytics_defs)``; the ``warehouse`` resource comes from there.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import dagster as dg

analytics_refresh_job = dg.define_asset_job(
    "analytics_refresh",
    selection=dg.AssetSelection.groups("analytics", "serving"),
    description="dbt build of every staging model and mart (with their tests), then publish "
    "the read-only snapshot that Grafana, notebooks and the API read.",
)

daily_analytics_refresh = dg.ScheduleDefinition(
    name="daily_analytics_refresh",
    job=analytics_refresh_job,
    cron_schedule="30 2 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily marts and snapshot, after the night's hourly git refreshes.",
)


@cache
def build_analytics_definitions() -> dg.Definitions:
    from dagster_dbt import DbtCliResource

    from symbiotic_assets.analytics.assets import build_dbt_assets
    from symbiotic_assets.analytics.project import dbt_executable, dbt_project

    return dg.Definitions(
        assets=[build_dbt_assets()],
        jobs=[analytics_refresh_job],
        schedules=[daily_analytics_refresh],
        resources={
            "dbt": DbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_executable())
        },
    )


def __getattr__(name: str) -> Any:
    if name == "defs":
        return build_analytics_definitions()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
