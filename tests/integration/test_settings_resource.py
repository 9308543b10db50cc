"""Settings reach assets and sensors as the ``settings`` Dagster resource.

A run given its own ``SettingsResource`` uses it, not whatever ``$SYMBIOTIC_HOME`` said:
the publish asset writes under the resource's home and the memory sensor watches the
store there. Real DuckDB and SQLite files, real Dagster runs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import pytest

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


# -- every Dagster call site takes its settings from the resource -------------------------
#
# The process's own configuration (``./symbiotic.yaml`` in the test's working directory,
# ``$SYMBIOTIC_HOME``) names a repository "decoy" and a home with its own memory store;
# the resource names "alpha" and "beta" and another home. A call site that went back to
# ``load_settings()`` would see the decoy and the process's home, and these tests fail.


TICK = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


def _two_configurations(symbiotic_home: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(the resource's config file, the resource's home); the process has its own of both."""
    from gitrepo import build_standard_repo

    for name in ("alpha", "beta", "decoy"):
        build_standard_repo(tmp_path / "repos" / name)
    (tmp_path / "symbiotic.yaml").write_text(  # the process's: cwd is tmp_path
        f"repositories:\n  - path: {tmp_path / 'repos' / 'decoy'}\n"
    )
    other = tmp_path / "other.yaml"
    other.write_text(
        "repositories:\n"
        f"  - path: {tmp_path / 'repos' / 'alpha'}\n"
        f"  - path: {tmp_path / 'repos' / 'beta'}\n"
        "settings:\n  stale_branch_days: 7\n"
    )
    return other, tmp_path / "other-home"


def _resources(config_file: Path, home: Path) -> dict[str, object]:
    settings = SettingsResource(config_file=str(config_file), home=str(home))
    return {"settings": settings, "warehouse": WarehouseResource(settings=settings)}


def test_discovery_sensor_registers_the_resource_repositories(symbiotic_home: Path, tmp_path: Path):
    from symbiotic_assets.git.definitions import repository_discovery_sensor

    config_file, home = _two_configurations(symbiotic_home, tmp_path)
    with dg.instance_for_test() as instance:
        result = repository_discovery_sensor(
            dg.build_sensor_context(
                instance=instance,
                resources={"settings": SettingsResource(config_file=str(config_file))},
            )
        )
    assert sorted(r.partition_key for r in result.run_requests or []) == ["alpha", "beta"]
    (request,) = result.dynamic_partitions_requests or []
    assert sorted(request.partition_keys) == ["alpha", "beta"]  # not the process's "decoy"


def test_hourly_schedule_plans_the_resource_repositories_on_its_warehouse(
    symbiotic_home: Path, tmp_path: Path
):
    from symbiotic_assets.git.changes import refresh_many
    from symbiotic_assets.git.definitions import hourly_git_refresh

    config_file, home = _two_configurations(symbiotic_home, tmp_path)
    resources = _resources(config_file, home)
    settings = SettingsResource(config_file=str(config_file), home=str(home)).get_settings()

    def tick(instance: dg.DagsterInstance) -> list[str] | str:
        # the warehouse resource depends on the settings one: resources open as a context
        with dg.build_schedule_context(
            instance=instance, resources=resources, scheduled_execution_time=TICK
        ) as context:
            out = hourly_git_refresh(context)
        if isinstance(out, dg.SkipReason):
            return out.skip_message or ""
        return sorted(r.partition_key for r in out)

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("repositories", ["alpha", "beta", "decoy"])
        # "decoy" is not in the resource's configuration: not planned
        assert tick(instance) == ["alpha", "beta"]
        # the fingerprints are compared with the resource's warehouse (under its home)
        refresh_many(settings.warehouse, settings.all_repositories(), workers=1)
        idle = tick(instance)
        assert isinstance(idle, str) and "2 repositories checked" in idle and "none changed" in idle
    assert Path(settings.warehouse) == home / "warehouse.duckdb"
    assert not (symbiotic_home / "warehouse.duckdb").exists()


def test_code_location_run_configured_with_other_settings_reads_and_writes_there(
    symbiotic_home: Path, tmp_path: Path
):
    """The code location as deployed, one run pointed elsewhere by run configuration.

    The git assets find the partition's repository in the run's file, and the
    warehouse resource (no ``database`` of its own) resolves under the run's home.
    """
    from symbiotic_assets.definitions import build_definitions

    config_file, home = _two_configurations(symbiotic_home, tmp_path)
    defs = build_definitions()
    run_config = {
        "resources": {"settings": {"config": {"config_file": str(config_file), "home": str(home)}}}
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("repositories", ["alpha", "decoy"])
        result = defs.resolve_job_def("git_refresh").execute_in_process(
            partition_key="alpha", instance=instance, run_config=run_config
        )
    assert result.success
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute(
            "SELECT repository, count(*) FROM git.commits GROUP BY 1"
        ).fetchall() == [("alpha", 10)]
        merges = con.execute(
            "SELECT count(*) FROM git.merges WHERE repository = 'alpha'"
        ).fetchone()
        assert merges == (2,)
    assert not (symbiotic_home / "warehouse.duckdb").exists()


def test_change_terms_publish_groups_under_the_resource_home(symbiotic_home: Path, tmp_path: Path):
    from symbiotic_assets.git.extract import refresh_repository
    from symbiotic_assets.search.change_assets import change_terms

    config_file, home = _two_configurations(symbiotic_home, tmp_path)
    resources = _resources(config_file, home)
    settings = SettingsResource(config_file=str(config_file), home=str(home)).get_settings()
    (alpha,) = [s for s in settings.all_repositories() if s.name == "alpha"]
    refresh_repository(settings.warehouse, alpha)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("repositories", ["alpha"])
        result = dg.materialize(
            [change_terms], partition_key="alpha", instance=instance, resources=resources
        )
    assert result.success
    (mat,) = result.asset_materializations_for_node("search__change_terms")
    assert mat.metadata["commits_read"].value == 8  # the 10 commits less the 2 merges
    assert (home / "published" / "search-changes").is_dir()
    assert not (symbiotic_home / "published").exists()


def _run_batch_refresh(config_file: Path, home: Path, embed: bool) -> dg.ExecuteInProcessResult:
    """``git_refresh_changed`` on the code location, handed these settings by run config."""
    from symbiotic_assets.definitions import build_definitions

    run_config = {
        "resources": {"settings": {"config": {"config_file": str(config_file), "home": str(home)}}},
        "ops": {"refresh_changed_repositories": {"config": {"embed": embed, "workers": 1}}},
    }
    with dg.instance_for_test() as instance:
        return (
            build_definitions()
            .resolve_job_def("git_refresh_changed")
            .execute_in_process(instance=instance, run_config=run_config)
        )


def test_batch_refresh_job_refreshes_the_resource_repositories(
    symbiotic_home: Path, tmp_path: Path
):
    config_file, home = _two_configurations(symbiotic_home, tmp_path)
    result = _run_batch_refresh(config_file, home, embed=False)
    assert result.success
    summary = result.output_for_node("refresh_changed_repositories")
    assert summary["checked"] == 2 and summary["changed"] == 2 and summary["failed"] == 0
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        names = con.execute("SELECT DISTINCT repository FROM git.commits ORDER BY 1").fetchall()
    assert names == [("alpha",), ("beta",)]


def test_memory_jobs_read_and_publish_under_the_resource_home(symbiotic_home: Path, tmp_path: Path):
    """memory_load reads the run's store; memory_learn publishes the recommender there."""
    from symbiotic_assets.definitions import build_definitions
    from symbiotic_assets.memory.serving import current_version

    other_home = tmp_path / "other-home"
    for home, attempts in ((symbiotic_home, 1), (other_home, 3)):
        home.mkdir(parents=True)
        with MemoryStore(home / "memory.sqlite") as store:
            for i in range(attempts):
                store.record_fix_attempt(_attempt(i))
    run_config = {"resources": {"settings": {"config": {"home": str(other_home)}}}}
    defs = build_definitions()
    with dg.instance_for_test() as instance:
        load = defs.resolve_job_def("memory_load")
        result = load.execute_in_process(instance=instance, run_config=run_config)
        assert result.success
        learn = defs.resolve_job_def("memory_learn")
        learned = learn.execute_in_process(instance=instance, run_config=run_config)
        assert learned.success
    (mat,) = [
        m
        for m in result.asset_materializations_for_node("memory_tables")
        if m.asset_key == dg.AssetKey(["memory", "fix_attempts"])
    ]
    assert mat.metadata["total_rows"].value == 3  # the process's store has 1
    with duckdb.connect(str(other_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM memory.fix_attempts").fetchone() == (3,)
    (published,) = learned.asset_materializations_for_node("memory__recommender_index")
    root = other_home / "published" / "recommender"
    assert published.metadata["path"].value == str(root.resolve())
    assert published.metadata["attempts"].value == 3
    assert current_version(root) == published.metadata["version"].value
    assert not (symbiotic_home / "warehouse.duckdb").exists()
    assert not (symbiotic_home / "published").exists()


def test_dbt_vars_take_stale_branch_days_from_the_given_settings(
    symbiotic_home: Path, tmp_path: Path
):
    from symbiotic_assets.analytics.assets import DbtBuildConfig, dbt_vars

    config_file, home = _two_configurations(symbiotic_home, tmp_path)
    settings = SettingsResource(config_file=str(config_file)).get_settings()
    assert dbt_vars(DbtBuildConfig(), settings) == {"stale_branch_days": 7}  # the process: 30
    assert dbt_vars(DbtBuildConfig(stale_branch_days=3), settings) == {"stale_branch_days": 3}


def test_code_location_loads_with_a_broken_configuration(symbiotic_home: Path, tmp_path: Path):
    """Nothing is read at import: a bad file fails the runs and ticks that read it, naming it."""
    from symbiotic_assets.definitions import build_definitions

    (tmp_path / "symbiotic.yaml").write_text("reposotories: []\n")
    defs = build_definitions()  # used to raise ConfigError here, taking the location down
    dg.Definitions.validate_loadable(defs)
    sensor = defs.resolve_sensor_def("repository_discovery_sensor")
    with dg.instance_for_test() as instance:
        result = sensor(
            dg.build_sensor_context(instance=instance, resources={"settings": SettingsResource()})
        )
    assert result.skip_reason is not None
    assert "configuration unusable" in str(result.skip_reason)
    assert "symbiotic.yaml" in str(result.skip_reason) and "reposotories" in str(result.skip_reason)


def test_warehouse_resource_resolves_its_database_from_its_settings(
    symbiotic_home: Path, tmp_path: Path
):
    home = tmp_path / "h"
    assert WarehouseResource(settings=SettingsResource(home=str(home))).resolved_database() == str(
        home.resolve() / "warehouse.duckdb"
    )
    explicit = WarehouseResource(
        database=str(tmp_path / "w.duckdb"), settings=SettingsResource(home=str(home))
    )
    assert explicit.resolved_database() == str(tmp_path / "w.duckdb")


def _attempt(i: int) -> dict[str, object]:
    return {
        "issue_type": "security", "message": f"issue {i}", "file_path": f"src/m{i}.py",
        "line_number": i, "stage": "bandit", "agent": "SecurityAgent", "strategy": "security_fix",
        "success": True, "session_id": "s-1", "timestamp": f"2024-05-0{1 + i}T10:00:00Z",
        "project": "alpha",
    }  # fmt: skip


def _pr_repository(path: Path, topic: str) -> Path:
    """A history of its own with one pull request merged into main."""
    from gitrepo import ALICE, BOB, GitRepoBuilder

    b = GitRepoBuilder(path)
    b.commit(f"Start {topic}", "2024-01-01T09:00:00+0000", ALICE, {f"{topic}.py": "x = 1\n"})
    b.checkout("-b", f"{topic}-fix")
    b.commit(f"Fix {topic}", "2024-01-02T09:00:00+0000", BOB, {f"{topic}.py": "x = 2\n"})
    b.checkout("main")
    b.merge(f"{topic}-fix", f"Merge pull request #7 from bob/{topic}-fix\n\nFix {topic}",
            "2024-01-02T11:00:00+0000", ALICE)  # fmt: skip
    return path


def test_batch_refresh_publishes_the_pr_groups_once_for_all_repositories(
    symbiotic_home: Path, tmp_path: Path
):
    """Change terms of every changed repository, then one publish of the PR groups (per
    repository it rewrote every group of every repository each time)."""
    repos = [_pr_repository(tmp_path / name, name) for name in ("alpha", "beta", "gamma")]
    config_file = tmp_path / "batch.yaml"
    config_file.write_text("repositories:\n" + "".join(f"  - path: {r}\n" for r in repos))
    home = tmp_path / "batch-home"
    result = _run_batch_refresh(config_file, home, embed=True)
    assert result.success
    mats = [
        m
        for m in result.asset_materializations_for_node("refresh_changed_repositories")
        if m.asset_key == dg.AssetKey(["search", "change_terms"])
    ]
    assert sorted(m.partition for m in mats) == ["alpha", "beta", "gamma"]
    assert all(m.metadata["pr_groups_found"].value == 1 for m in mats)
    versions = {m.metadata["groups_version"].value for m in mats}
    folder = home / "published" / "search-changes" / "versions"
    published = sorted(p.name for p in folder.iterdir())
    assert len(versions) == 1 and published == sorted(versions)  # one publish for the batch


def test_embedder_exports_models_under_the_home_of_its_settings(
    symbiotic_home: Path, tmp_path: Path
):
    """The model export folder follows the settings resource (it read $SYMBIOTIC_HOME)."""
    from symbiotic_assets.core.resources import EmbedderResource
    from symbiotic_assets.definitions import build_definitions

    other = tmp_path / "other-home"
    embedder = EmbedderResource(settings=SettingsResource(home=str(other))).get_embedder()
    assert embedder.cache_dir == other.resolve() / "models"
    explicit = EmbedderResource(cache_dir=str(tmp_path / "m"), settings=SettingsResource())
    assert explicit.get_embedder().cache_dir == tmp_path / "m"
    assert EmbedderResource().get_embedder().cache_dir == symbiotic_home.resolve() / "models"
    # the code location wires both embedders to the shared settings resource
    defs = build_definitions()
    for key in ("search_embedder", "embedder"):
        assert defs.resources[key].settings is defs.resources["settings"]


def test_dbt_sees_the_warehouse_but_the_process_environment_is_left_alone(
    symbiotic_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """dbt's profile reads SYMBIOTIC_WAREHOUSE; it is set for the dbt process only. Left set
    (as building the definitions used to leave it on a fresh checkout), it overrode the
    settings of every later run and test in the same process."""
    import os

    from symbiotic_assets.analytics.project import prepare_dbt_manifest, warehouse_env

    assert prepare_dbt_manifest(str(tmp_path / "w.duckdb")).is_file()  # runs `dbt parse`
    assert "SYMBIOTIC_WAREHOUSE" not in os.environ
    with warehouse_env(str(tmp_path / "x" / ".." / "w.duckdb")) as database:
        assert os.environ["SYMBIOTIC_WAREHOUSE"] == database == str(tmp_path.resolve() / "w.duckdb")
    assert "SYMBIOTIC_WAREHOUSE" not in os.environ
    monkeypatch.setenv("SYMBIOTIC_WAREHOUSE", "md:team")
    with warehouse_env("md:other"):
        assert os.environ["SYMBIOTIC_WAREHOUSE"] == "md:other"
    assert os.environ["SYMBIOTIC_WAREHOUSE"] == "md:team"
