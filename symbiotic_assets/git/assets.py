"""Git history assets: one dynamic partition per repository.

The assets are thin: find the repository for the partition, call the pure
extraction functions in ``extract.py``, and report counts as metadata. Checks
that compare with git itself run inside the same step, right after the write.
"""

from collections.abc import Iterator
from typing import Any, Protocol

import dagster as dg

from symbiotic_assets.core.config import RepositorySpec, Settings
from symbiotic_assets.core.resources import SettingsResource, WarehouseResource
from symbiotic_assets.core.warehouse import WAREHOUSE_POOL
from symbiotic_assets.git.extract import detect_merge_conflicts, refresh_repository
from symbiotic_assets.git.repository import GitRepository, RepositoryError

repositories_partitions = dg.DynamicPartitionsDefinition(name="repositories")

GROUP = "git"
REPOSITORIES = dg.AssetKey(["git", "repositories"])
COMMITS = dg.AssetKey(["git", "commits"])
COMMIT_FILES = dg.AssetKey(["git", "commit_files"])
REFS = dg.AssetKey(["git", "refs"])
REF_EVENTS = dg.AssetKey(["git", "ref_events"])
MERGES = dg.AssetKey(["git", "merges"])


class ProgressListener(Protocol):
    def __call__(self, repository: str, phase: str, done: int, total: int | None) -> None: ...


# In-process listeners (the CLI's progress bar); Dagster's own logs always get the counts.
progress_listeners: list[ProgressListener] = []


def _notify(repository: str, phase: str, done: int, total: int | None) -> None:
    for listener in progress_listeners:
        listener(repository, phase, done, total)


def repository_for_partition(partition_key: str, settings: Settings) -> RepositorySpec:
    """The configured repository a partition stands for, from the settings the caller was
    handed (its ``settings`` resource), so a run configured with another file reads that
    file's repositories."""
    for spec in settings.all_repositories():
        if spec.name == partition_key:
            return spec
    raise RepositoryError(
        partition_key,
        "is not in the configured repositories any more (symbiotic.yaml / SYMBIOTIC_REPOSITORIES); "
        "add it back or drop the partition",
    )


def _count_with_git(spec: RepositorySpec) -> int:
    """Reachable commits counted by git alone, independently of our tip logic."""
    repo = GitRepository.open(spec.name, spec.path)
    args = ["rev-list", "--count", "--branches", "--remotes", "--tags"]
    if repo.head()[1]:
        args.append("HEAD")
    return int(repo.text(args).strip() or 0)


def _duplicates(warehouse: WarehouseResource, table: str, key: str, repository: str) -> int:
    with warehouse.connect() as con:
        row = con.execute(
            f"SELECT count(*) FROM (SELECT {key} FROM git.{table} WHERE repository = ? "
            f"GROUP BY {key} HAVING count(*) > 1)",
            [repository],
        ).fetchone()
    return int(row[0]) if row else 0


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            REPOSITORIES,
            description="One row per repository: path, default branch, reflog "
            "availability, shallow/bare flags, commit count, fingerprint of its tips.",
        ),
        dg.AssetSpec(
            COMMITS,
            description="Every commit reachable from a branch, remote branch, tag or "
            "HEAD (mailmap applied, UTC timestamps with original offsets, churn, bot flag). "
            "Commits a rewrite left behind are kept with is_reachable = false.",
        ),
        dg.AssetSpec(
            COMMIT_FILES,
            description="Per-file insertions/deletions of each commit; binary "
            "files flagged (NULL lines), renames with their old path.",
        ),
        dg.AssetSpec(
            REFS,
            description="Branches, remote branches and tags: tip, tip date, merged into "
            "the default branch.",
        ),
        dg.AssetSpec(
            REF_EVENTS,
            description="Reflog events (checkout/switch, branch created, commit, "
            "merge, rebase, reset, ...) and branch deletions seen between snapshots.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "commit_count_matches_git",
            asset=COMMITS,
            description="Reachable commits stored = git rev-list --count over branches, "
            "remotes, tags and HEAD.",
        ),
        dg.AssetCheckSpec("no_duplicate_commits", asset=COMMITS),
        dg.AssetCheckSpec("no_duplicate_ref_events", asset=REF_EVENTS),
        dg.AssetCheckSpec(
            "churn_known",
            asset=COMMITS,
            description="Warns when some reachable commits have unknown churn (NULL): git could "
            "not compute their diff because the repository lacks objects (partial clone, "
            "damaged pack).",
        ),
    ],
    partitions_def=repositories_partitions,
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    can_subset=False,
)
def git_history(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, settings: SettingsResource
) -> Iterator:
    """Stream new commits from one ``git log``, mark rewritten ones, snapshot refs and reflog."""
    spec = repository_for_partition(context.partition_key, settings.get_settings())
    seen = 0
    total: int | None = None

    def on_total(n: int) -> None:
        nonlocal total
        total = n
        context.log.info(f"{spec.name}: {n} commits to read")
        _notify(spec.name, "commits", 0, n)

    def progress(n: int) -> None:
        nonlocal seen
        seen += n
        context.log.info(f"{spec.name}: {seen}/{total} commits parsed and written")
        _notify(spec.name, "commits", seen, total)

    result = refresh_repository(
        warehouse.database, spec, progress=progress, total_hint=on_total, chunk_commits=5_000
    )
    if result.noop:
        context.log.info(f"{spec.name}: no ref, HEAD or reflog changed; nothing to do")
    else:
        context.log.info(
            f"{spec.name}: {result.new_commits} new commits, {result.now_unreachable} no longer "
            f"reachable, {result.reachable_again} reachable again, {result.new_ref_events} new ref "
            f"events in {result.seconds:.2f}s"
        )
    if result.is_shallow:
        context.log.warning(
            f"{spec.name}: shallow clone; history before the shallow boundary is absent"
        )
    if not result.has_reflog:
        context.log.warning(f"{spec.name}: no reflog; branch switches are unknown for it")
    if result.churn_unknown or result.missing_objects:
        context.log.warning(
            f"{spec.name}: {result.churn_unknown} new commits stored with unknown churn; "
            f"{result.degraded_reason or 'objects are missing'}"
        )

    common: dict[str, Any] = {
        "repository": spec.name,
        "repository_path": result.repository_path,
        "noop": result.noop,
    }
    yield dg.MaterializeResult(asset_key=REPOSITORIES, metadata={
        **common, "default_branch": result.default_branch or "", "has_reflog": result.has_reflog,
        "is_shallow": result.is_shallow})  # fmt: skip
    yield dg.MaterializeResult(asset_key=COMMITS, metadata={
        **common, "new_commits": result.new_commits, "reachable_commits": result.reachable_commits,
        "now_unreachable": result.now_unreachable, "reachable_again": result.reachable_again,
        "seconds": round(result.seconds, 3), "churn_unknown": result.churn_unknown,
        "missing_objects": result.missing_objects})  # fmt: skip
    yield dg.MaterializeResult(
        asset_key=COMMIT_FILES, metadata={**common, "new_rows": result.new_files}
    )
    yield dg.MaterializeResult(asset_key=REFS, metadata={**common, "refs": result.refs})
    yield dg.MaterializeResult(asset_key=REF_EVENTS, metadata={
        **common, "new_events": result.new_ref_events,
        "deleted_branches": ", ".join(result.deleted_branches)})  # fmt: skip

    git_count = _count_with_git(spec)
    yield dg.AssetCheckResult(
        check_name="commit_count_matches_git", asset_key=COMMITS,
        passed=git_count == result.reachable_commits,
        metadata={"git_rev_list_count": git_count, "stored_reachable": result.reachable_commits},
    )  # fmt: skip
    dup = _duplicates(warehouse, "commits", "hash", spec.name)
    yield dg.AssetCheckResult(check_name="no_duplicate_commits", asset_key=COMMITS, passed=dup == 0,
                              metadata={"duplicated_keys": dup})  # fmt: skip
    dup = _duplicates(warehouse, "ref_events", "event_key", spec.name)
    yield dg.AssetCheckResult(check_name="no_duplicate_ref_events", asset_key=REF_EVENTS,
                              passed=dup == 0, metadata={"duplicated_keys": dup})  # fmt: skip
    yield _churn_known_check(warehouse, spec.name)


def _churn_known_check(warehouse: WarehouseResource, repository: str) -> dg.AssetCheckResult:
    """WARN (not an error: the rest of the history is right) while any churn is unknown."""
    with warehouse.connect() as con:
        row = con.execute(
            "SELECT count(*) FILTER (WHERE insertions IS NULL), count(*) FROM git.commits "
            "WHERE repository = ? AND is_reachable",
            [repository],
        ).fetchone()
    unknown, total = (int(row[0]), int(row[1])) if row else (0, 0)
    return dg.AssetCheckResult(
        check_name="churn_known", asset_key=COMMITS, passed=unknown == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"commits_with_unknown_churn": unknown, "reachable_commits": total},
    )  # fmt: skip


@dg.asset(
    key=MERGES,
    deps=[COMMITS],
    partitions_def=repositories_partitions,
    group_name=GROUP,
    pool=WAREHOUSE_POOL,
    check_specs=[dg.AssetCheckSpec("no_duplicate_merges", asset=MERGES)],
    description="Every merge commit re-merged with git merge-tree --write-tree: clean or conflict "
    "with the conflicted paths; octopus merges, unrelated histories and missing parents recorded as such.",
)
def git_merges(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, settings: SettingsResource
) -> Iterator:
    current = settings.get_settings()
    spec = repository_for_partition(context.partition_key, current)
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        _notify(spec.name, "merges", done, None)

    from symbiotic_assets.git.shared_history import reuse_merge_verdicts

    with warehouse.connect() as con:
        reused = reuse_merge_verdicts(con, spec.name)  # forks and clones: judged elsewhere
    result = detect_merge_conflicts(
        warehouse.database, spec, workers=current.merge_workers, progress=progress
    )
    context.log.info(
        f"{spec.name}: {reused} verdicts copied from repositories sharing the history; re-merged {result.examined} merges ({result.conflict} conflict, {result.clean} "
        f"clean, {result.octopus} octopus, {result.parent_missing} missing parent, {result.errors} "
        f"errors) at {result.merges_per_second:.0f}/s"
    )
    yield dg.MaterializeResult(metadata={
        "repository": spec.name, "examined": result.examined, "conflict": result.conflict,
        "clean": result.clean, "octopus": result.octopus, "unrelated_histories": result.unrelated,
        "parent_missing": result.parent_missing, "errors": result.errors,
        "merges_per_second": round(result.merges_per_second, 1), "reused_verdicts": reused})  # fmt: skip
    dup = _duplicates(warehouse, "merges", "merge_hash", spec.name)
    yield dg.AssetCheckResult(check_name="no_duplicate_merges", passed=dup == 0,
                              metadata={"duplicated_keys": dup})  # fmt: skip
