"""The dbt models as Dagster assets (built by a cached factory, so importing is cheap)."""

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import dagster as dg

from symbiotic_assets.analytics.project import (
    dbt_project,
    ensure_dbt_manifest,
    export_warehouse_env,
)
from symbiotic_assets.core.config import load_settings
from symbiotic_assets.core.warehouse import WAREHOUSE_POOL, WarehouseResource

# The marts readers use; the publish asset waits for all of them. A test checks this
# list against the dbt manifest, so a new mart cannot be forgotten here.
MART_MODELS = (
    "dim_repository_health",
    "fct_branch_switches_daily",
    "fct_commit_velocity_daily",
    "fct_conflict_velocity_correlation",
    "fct_cross_project_issue_patterns",
    "fct_cross_project_patterns",
    "fct_merge_conflicts_daily",
    "fct_recommendation_calibration",
    "fct_session_metrics",
    "fct_skill_effectiveness",
    "fct_strategy_effectiveness",
)
MART_ASSET_KEYS = tuple(dg.AssetKey(["analytics", name]) for name in MART_MODELS)


class DbtBuildConfig(dg.Config):
    """Run-time knobs of `dbt build`; empty values mean the project's defaults."""

    as_of: str = ""  # "YYYY-MM-DD HH:MM:SS" UTC; pins "now" for windows, staleness and trends
    stale_branch_days: int = 0  # 0: the value from symbiotic.yaml (settings.stale_branch_days)


def dbt_vars(config: DbtBuildConfig) -> dict[str, Any]:
    stale = config.stale_branch_days or load_settings().stale_branch_days
    out: dict[str, Any] = {"stale_branch_days": stale}
    if config.as_of:
        out["as_of"] = config.as_of
    return out


def ensure_source_tables(warehouse: WarehouseResource) -> None:
    """Create the (empty) source tables that no asset has written yet.

    dbt-duckdb binds the staging views when it creates them, so a deployment whose memory
    store never received an event (or whose git assets have not run) would otherwise fail
    the whole build instead of producing empty marts.
    """
    from symbiotic_assets.core.schema import ensure_memory_schema
    from symbiotic_assets.core.warehouse import ensure_git_schema

    with warehouse.connect() as con:
        ensure_git_schema(con)
        ensure_memory_schema(con)


@cache
def build_dbt_assets() -> dg.AssetsDefinition:
    from dagster_dbt import DbtCliResource, dbt_assets

    from symbiotic_assets.analytics.translator import SymbioticDbtTranslator

    manifest = ensure_dbt_manifest()

    @dbt_assets(
        manifest=manifest,
        project=dbt_project(),
        dagster_dbt_translator=SymbioticDbtTranslator(),
        pool=WAREHOUSE_POOL,
        name="analytics_dbt_models",
    )
    def analytics_dbt_models(
        context: dg.AssetExecutionContext,
        dbt: DbtCliResource,
        warehouse: WarehouseResource,
        config: DbtBuildConfig,
    ) -> Iterator[Any]:
        """`dbt build` (models and their tests) on the warehouse, holding the writer pool."""
        ensure_source_tables(warehouse)
        database = export_warehouse_env(warehouse.database)
        variables = dbt_vars(config)
        context.log.info(f"dbt build on {database} with vars {variables}")
        yield from dbt.cli(["build", "--vars", json.dumps(variables)], context=context).stream()

    return analytics_dbt_models
