"""One place decides what the dbt nodes are called in Dagster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

GROUP = "analytics"
# dbt sources whose tables are written by Python assets of the same name: the
# source `git.commits` *is* the asset ["git", "commits"], and `memory.events` the asset
# ["memory", "events"] (symbiotic_assets/memory/assets.py), so lineage is one graph.
PYTHON_ASSET_SOURCES = frozenset({"git", "memory"})


class SymbioticDbtTranslator(DagsterDbtTranslator):
    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            source = dbt_resource_props["source_name"]
            if source in PYTHON_ASSET_SOURCES:
                return dg.AssetKey([source, dbt_resource_props["name"]])
        if dbt_resource_props["resource_type"] in ("model", "snapshot", "seed"):
            return dg.AssetKey([GROUP, dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_group_name(dbt_resource_props)
        return GROUP
