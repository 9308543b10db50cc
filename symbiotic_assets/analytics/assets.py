"""The dbt models as Dagster assets (built by a cached factory, so importing is cheap)."""

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg

from symbiotic_assets.analytics.project import (
    dbt_project,
    ensure_dbt_manifest,
    warehouse_env,
)
from symbiotic_assets.core.config import Settings
from symbiotic_assets.core.resources import SettingsResource, WarehouseResource
from symbiotic_assets.core.warehouse import WAREHOUSE_POOL

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
    force: bool = False  # build even when the inputs did not change since the last build


# What the marts are computed from, cheaply: row counts and high-water marks of every
# source table (a refresh that changes git rows rewrites git.repositories.extracted_at;
# merges, reflog events and memory rows are counted). Equal values mean dbt would
# rebuild the same tables, so the build is skipped.
_SOURCE_STATE_SQL = {
    "git.repositories": "SELECT count(*), max(extracted_at), "
    "md5(coalesce(string_agg(repository || ':' || coalesce(refs_fingerprint, ''), ',' "
    "ORDER BY repository), '')) FROM git.repositories",
    "git.commits": "SELECT count(*), count(*) FILTER (WHERE is_reachable), max(extracted_at) "
    "FROM git.commits",
    "git.commit_files": "SELECT count(*) FROM git.commit_files",
    "git.refs": "SELECT count(*), max(extracted_at) FROM git.refs",
    "git.ref_events": "SELECT count(*), max(occurred_at) FROM git.ref_events",
    "git.merges": "SELECT count(*), count(has_conflict), count(*) FILTER (WHERE has_conflict) "
    "FROM git.merges",
    "memory.fix_attempts": "SELECT count(*), max(id), max(updated_at), "
    "count(*) FILTER (WHERE deleted) FROM memory.fix_attempts",
    "memory.recommendation_feedback": "SELECT count(*), max(id) FROM memory.recommendation_feedback",
    "memory.events": "SELECT count(*), max(id) FROM memory.events",
}
INPUT_FINGERPRINT = "input_fingerprint"


def _project_files_digest() -> str:
    """Digest of the dbt project's own files: a changed model must be rebuilt."""
    from symbiotic_assets.analytics.project import DBT_PROJECT_DIR

    h = hashlib.sha256()
    root = Path(DBT_PROJECT_DIR)
    for sub in ("models", "macros", "tests", "seeds", "dbt_project.yml", "packages.yml"):
        target = root / sub
        files = sorted(target.rglob("*")) if target.is_dir() else [target]
        for f in files:
            if f.is_file():
                h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def marts_input_fingerprint(warehouse: WarehouseResource, variables: dict[str, Any]) -> str:
    """One hash of everything a `dbt build` depends on.

    Source tables (counts and high-water marks), the dbt vars, the project's files and
    the UTC date: marts measure staleness and trends against "now", so they are rebuilt
    at least once a day even when no row changed.
    """
    h = hashlib.sha256()
    with warehouse.connect() as con:  # the step holds the writer pool; no second mode
        for name, sql in _SOURCE_STATE_SQL.items():
            h.update(f"{name}={con.execute(sql).fetchone()!r}\n".encode())
    day = "" if variables.get("as_of") else dt.datetime.now(dt.UTC).date().isoformat()
    h.update(json.dumps(variables, sort_keys=True).encode() + day.encode())
    h.update(_project_files_digest().encode())
    return h.hexdigest()


def last_built_fingerprint(instance: dg.DagsterInstance) -> str | None:
    """The input fingerprint recorded by the last complete, successful build."""
    records = instance.fetch_observations(MART_ASSET_KEYS[0], limit=1).records
    if not records or records[0].asset_observation is None:
        return None
    value = records[0].asset_observation.metadata.get(INPUT_FINGERPRINT)
    return str(value.value) if value is not None else None


def dbt_vars(config: DbtBuildConfig, settings: Settings) -> dict[str, Any]:
    """dbt's ``--vars``: the run's config, else ``settings`` (the asset's ``settings`` resource)."""
    stale = config.stale_branch_days or settings.stale_branch_days
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
    from symbiotic_assets.core.schema import ensure_git_schema, ensure_memory_schema

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
        settings: SettingsResource,
        config: DbtBuildConfig,
    ) -> Iterator[Any]:
        """`dbt build` (models and their tests) on the warehouse, holding the writer pool."""
        ensure_source_tables(warehouse)
        database = warehouse.database
        variables = dbt_vars(config, settings.get_settings())
        # Only a build of every model records or honours the fingerprint: a subset
        # selected in the UI is built as asked.
        whole = set(context.selected_asset_keys) == set(context.assets_def.keys)
        fingerprint = marts_input_fingerprint(warehouse, variables) if whole else None
        if (
            fingerprint
            and not config.force
            and last_built_fingerprint(context.instance) == fingerprint
        ):
            context.log.info(
                "dbt build skipped: sources, vars, project and day unchanged since the "
                "last build; the published snapshot stays as it is"
            )
            # No output: the marts keep their last materialization and the publish
            # step downstream is skipped with them.
            for key in MART_ASSET_KEYS:
                yield dg.AssetObservation(
                    asset_key=key, metadata={"skipped": True, INPUT_FINGERPRINT: fingerprint}
                )
            return
        context.log.info(f"dbt build on {database} with vars {variables}")
        with warehouse_env(database):  # read by dbt's profile when the process starts
            build = dbt.cli(["build", "--vars", json.dumps(variables)], context=context)
        yield from build.stream()
        if fingerprint:
            # reached only when dbt build succeeded (a failed build raises above)
            yield dg.AssetObservation(
                asset_key=MART_ASSET_KEYS[0],
                metadata={"skipped": False, INPUT_FINGERPRINT: fingerprint},
            )

    return analytics_dbt_models
