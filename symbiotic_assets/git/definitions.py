"""Everything about the git source in one place: assets, job, sensor, schedule."""

import dagster as dg

from symbiotic_assets.core.config import ConfigError, load_settings
from symbiotic_assets.git.assets import (
    git_history,
    git_merges,
    repositories_partitions,
)

git_refresh_job = dg.define_asset_job(
    "git_refresh",
    selection=dg.AssetSelection.groups("git"),
    description="Extract new history and re-merge new merges of one repository.",
)


@dg.sensor(
    job=git_refresh_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers configured and discovered repositories as partitions and extracts new ones.",
)
def repository_discovery_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    try:
        wanted = [spec.name for spec in load_settings().all_repositories()]
    except ConfigError as exc:
        return dg.SensorResult(skip_reason=f"configuration unusable: {exc}")
    known = set(context.instance.get_dynamic_partitions(repositories_partitions.name or ""))
    new = [name for name in wanted if name not in known]
    if not new:
        return dg.SensorResult(skip_reason=f"{len(wanted)} repositories, none new")
    return dg.SensorResult(
        dynamic_partitions_requests=[repositories_partitions.build_add_request(new)],
        run_requests=[
            dg.RunRequest(partition_key=name, run_key=f"discovered:{name}") for name in new
        ],
    )


@dg.schedule(
    job=git_refresh_job,
    cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly refresh of every registered repository (a no-op where nothing changed).",
)
def hourly_git_refresh(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    keys = context.instance.get_dynamic_partitions(repositories_partitions.name or "")
    stamp = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else ""
    return [dg.RunRequest(partition_key=k, run_key=f"hourly:{k}:{stamp}") for k in keys]


defs = dg.Definitions(
    assets=[git_history, git_merges],
    jobs=[git_refresh_job],
    sensors=[repository_discovery_sensor],
    schedules=[hourly_git_refresh],
)
