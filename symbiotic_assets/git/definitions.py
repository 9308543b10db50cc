"""Everything about the git source in one place: assets, job, sensor, schedule."""

import dagster as dg

from symbiotic_assets.core.config import ConfigError
from symbiotic_assets.core.resources import SettingsResource, WarehouseResource, settings_resource
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
def repository_discovery_sensor(
    context: dg.SensorEvaluationContext, settings: SettingsResource
) -> dg.SensorResult:
    try:
        wanted = [spec.name for spec in settings.get_settings().all_repositories()]
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
    description="Hourly: fingerprints every registered repository and requests a refresh only "
    "for those whose refs, HEAD or reflog moved (or whose merges are unfinished).",
)
def hourly_git_refresh(
    context: dg.ScheduleEvaluationContext,
    settings: SettingsResource,
    warehouse: WarehouseResource,
) -> dg.SkipReason | list[dg.RunRequest]:
    """One fingerprint check per repository in this process, one run per changed one only.

    A run per repository would cost a Dagster run start-up (about a second) for each
    repository even when nothing moved; the check costs a ``for-each-ref`` and a few
    ``stat`` calls.
    """
    from symbiotic_assets.core.config import RepositorySpec
    from symbiotic_assets.git.changes import plan_changes

    try:  # read once here, not once per partition (scan roots are walked each time)
        configured = {spec.name: spec for spec in settings.get_settings().all_repositories()}
    except ConfigError as exc:
        return dg.SkipReason(f"configuration unusable: {exc}")
    keys = context.instance.get_dynamic_partitions(repositories_partitions.name or "")
    specs: list[RepositorySpec] = [configured[key] for key in keys if key in configured]
    # a partition no longer configured: its run would only fail the same way every hour
    gone = [key for key in keys if key not in configured]
    if gone:
        context.log.warning(f"not in the configuration any more, not refreshed: {', '.join(gone)}")
    # the warehouse the git_refresh runs write (the settings' one unless overridden)
    plan = plan_changes(warehouse.resolved_database(), specs)
    changed = plan.changed
    if not changed:
        return dg.SkipReason(
            f"{len(specs)} repositories checked in {plan.seconds:.2f}s; none changed"
        )
    stamp = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else ""
    return [
        dg.RunRequest(
            partition_key=c.spec.name,
            run_key=f"hourly:{c.spec.name}:{stamp}",
            tags={"symbiotic/reason": "; ".join(c.reasons)[:200]},
        )
        for c in changed
    ]


defs = dg.Definitions(
    assets=[git_history, git_merges],
    jobs=[git_refresh_job],
    sensors=[repository_discovery_sensor],
    schedules=[hourly_git_refresh],
    resources={"settings": settings_resource},
)
