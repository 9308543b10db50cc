"""The publish asset: the snapshot readers open, refreshed after the marts."""

import dagster as dg

from symbiotic_assets.analytics.assets import MART_ASSET_KEYS, MART_MODELS
from symbiotic_assets.core.resources import SettingsResource, WarehouseResource
from symbiotic_assets.core.warehouse import WAREHOUSE_POOL
from symbiotic_assets.serving.publish import publish_snapshot

PUBLISHED_WAREHOUSE = dg.AssetKey(["serving", "published_warehouse"])


@dg.asset(
    key=PUBLISHED_WAREHOUSE,
    deps=list(MART_ASSET_KEYS),
    group_name="serving",
    pool=WAREHOUSE_POOL,
    description="Read-only copy of the warehouse at $SYMBIOTIC_HOME/published/warehouse.duckdb "
    "(CHECKPOINT, copy, verify, atomic os.replace) for Grafana, notebooks, the API and the MCP "
    "server. DuckDB 1.5 storage format, readable by the Grafana DuckDB plugin.",
)
def published_warehouse(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, settings: SettingsResource
) -> dg.MaterializeResult:
    published_dir = settings.get_settings().published_dir
    result = publish_snapshot(warehouse.database, published_dir, marts=MART_MODELS)
    context.log.info(
        f"published {result.size_bytes / 1e6:.1f} MB ({result.tables} tables, {result.views} views) "
        f"to {result.path} in {result.seconds:.2f}s"
    )
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(result.path)),
            "size_bytes": result.size_bytes,
            "storage_version": result.storage_version,
            "written_by": result.written_by,
            "tables": result.tables,
            "views": result.views,
            "seconds": round(result.seconds, 3),
            **{name: count for name, count in result.row_counts.items()},
        }
    )
