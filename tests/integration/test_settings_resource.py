"""Settings reach assets and sensors as the ``settings`` Dagster resource.

A run given its own ``SettingsResource`` uses it, not whatever ``$SYMBIOTIC_HOME`` said:
the publish asset writes under the resource's home and the memory sensor watches the
store there. Real DuckDB and SQLite files, real Dagster runs.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from symbiotic_assets.analytics.assets import MART_MODELS
from symbiotic_assets.core.resources import SettingsResource, WarehouseResource, settings_resource
from symbiotic_assets.events.store import MemoryStore


def test_definitions_share_one_settings_resource(symbiotic_home: Path):
    from symbiotic_assets.definitions import build_definitions

    defs = build_definitions()
    assert defs.resources is not None and defs.resources["settings"] is settings_resource
    publish = defs.resolve_assets_def(dg.AssetKey(["serving", "published_warehouse"]))
    assert "settings" in publish.required_resource_keys
    assert "settings" in defs.resolve_sensor_def("memory_events_sensor").required_resource_keys


def test_publish_asset_writes_under_the_resource_home(symbiotic_home: Path, tmp_path: Path):
    from symbiotic_assets.serving.assets import published_warehouse

    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("CREATE SCHEMA marts")
        for mart in MART_MODELS:
            con.execute(f"CREATE TABLE marts.{mart} (n INTEGER)")
        con.execute(f"INSERT INTO marts.{MART_MODELS[0]} VALUES (1), (2)")
    other_home = tmp_path / "other-home"
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [published_warehouse],
            resources={
                "warehouse": WarehouseResource(database=str(warehouse)),
                "settings": SettingsResource(home=str(other_home)),
            },
            instance=instance,
        )
    assert result.success
    snapshot = other_home / "published" / "warehouse.duckdb"
    assert snapshot.is_file()
    assert not (symbiotic_home / "published").exists()  # $SYMBIOTIC_HOME was not used
    with duckdb.connect(str(snapshot), read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM marts.{MART_MODELS[0]}").fetchone() == (2,)


def test_memory_sensor_watches_the_store_under_the_resource_home(
    symbiotic_home: Path, tmp_path: Path
):
    from symbiotic_assets.memory.definitions import memory_events_sensor

    other_home = tmp_path / "other-home"
    other_home.mkdir()
    with MemoryStore(other_home / "memory.sqlite"):
        pass  # a store exists here, none under $SYMBIOTIC_HOME
    resources = {"settings": SettingsResource(home=str(other_home))}
    with dg.instance_for_test() as instance:
        result = memory_events_sensor(
            dg.build_sensor_context(instance=instance, resources=resources)
        )
    # the default home has no store (old code: "no memory store yet"); the resource's has one
    assert result.skip_reason is None
    assert len(result.run_requests or []) == 1


def test_run_config_points_one_run_at_another_file(symbiotic_home: Path, tmp_path: Path):
    seen: list[tuple[Path, list[str]]] = []

    @dg.asset
    def probe(settings: SettingsResource) -> None:
        s = settings.get_settings()
        seen.append((s.home, [r.name for r in s.repositories]))

    other = tmp_path / "other.yaml"
    other.write_text("repositories:\n  - path: /srv/beta\n")
    with dg.instance_for_test() as instance:
        default = dg.materialize(
            [probe], resources={"settings": settings_resource}, instance=instance
        )
        configured = dg.materialize(
            [probe],
            resources={"settings": settings_resource},
            instance=instance,
            run_config={
                "resources": {
                    "settings": {
                        "config": {"config_file": str(other), "home": str(tmp_path / "h2")}
                    }
                }
            },
        )
    assert default.success and configured.success
    assert seen == [
        (symbiotic_home.resolve(), ["symbiotic"]),
        ((tmp_path / "h2").resolve(), ["beta"]),
    ]
