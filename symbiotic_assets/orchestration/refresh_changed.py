"""One Dagster run that refreshes every changed repository (job ``git_refresh_changed``).

The per-partition job ``git_refresh`` is the unit the UI, the sensor and the hourly
schedule launch. For hundreds of repositories at once a run per repository costs more
in Dagster start-up than the work itself, so ``symbiotic run`` uses this job instead:
one step looks at every repository's fingerprint (``changes.plan_changes``), extracts
and re-merges only the changed ones in parallel (``changes.refresh_many``), embeds
their new commits, and records the same per-partition materializations and the
``commit_count_matches_git`` check that ``git_refresh`` and ``search_embed`` record, so
the catalog shows each repository as materialized by this run.
"""

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from symbiotic_assets.core.resources import EmbedderResource, SettingsResource, WarehouseResource
from symbiotic_assets.core.warehouse import WAREHOUSE_POOL
from symbiotic_assets.git.assets import (
    COMMIT_FILES,
    COMMITS,
    MERGES,
    REF_EVENTS,
    REFS,
    REPOSITORIES,
    _count_with_git,
    _notify,
)

# search/commit_embeddings; spelled out because search.assets imports this package
COMMIT_EMBEDDINGS = dg.AssetKey(["search", "commit_embeddings"])
CHANGE_TERMS = dg.AssetKey(["search", "change_terms"])


class RefreshChangedConfig(dg.Config):
    """Which repositories to look at (empty: every configured one) and how many at once."""

    repositories: list[str] = []
    workers: int = 0  # 0: one per available core
    embed: bool = True  # also embed new commits for search


def _materializations(outcome: Any, embedded: dict[str, Any] | None) -> Iterator[Any]:
    r = outcome.refresh
    m = outcome.merges
    name = outcome.spec.name
    common: dict[str, Any] = {"repository": name, "repository_path": r.repository_path,
                              "noop": r.noop, "batch": True}  # fmt: skip
    per_key: list[tuple[dg.AssetKey, dict[str, Any]]] = [
        (REPOSITORIES, {"default_branch": r.default_branch or "", "has_reflog": r.has_reflog,
                        "is_shallow": r.is_shallow}),
        (COMMITS, {"new_commits": r.new_commits, "reachable_commits": r.reachable_commits,
                   "now_unreachable": r.now_unreachable, "reachable_again": r.reachable_again,
                   "seconds": round(r.seconds, 3)}),
        (COMMIT_FILES, {"new_rows": r.new_files}),
        (REFS, {"refs": r.refs}),
        (REF_EVENTS, {"new_events": r.new_ref_events,
                      "deleted_branches": ", ".join(r.deleted_branches)}),
    ]  # fmt: skip
    for key, extra in per_key:
        yield dg.AssetMaterialization(asset_key=key, partition=name, metadata={**common, **extra})
    yield dg.AssetMaterialization(asset_key=MERGES, partition=name, metadata={
        "repository": name, "batch": True, "examined": m.examined, "conflict": m.conflict,
        "clean": m.clean, "octopus": m.octopus, "parent_missing": m.parent_missing,
        "errors": m.errors, "reused_verdicts": outcome.extra.get("reused_verdicts", 0)})  # fmt: skip
    if embedded is not None:
        yield dg.AssetMaterialization(
            asset_key=COMMIT_EMBEDDINGS, partition=name, metadata={"repository": name, **embedded}
        )


def _rollback(con: Any) -> None:
    """Leave no failed transaction open on the shared connection for the next repository."""
    with contextlib.suppress(Exception):  # no transaction was open: nothing to undo
        con.execute("ROLLBACK")


@dg.op(
    pool=WAREHOUSE_POOL,
    description="Fingerprint every repository, then extract, re-merge and embed only the "
    "changed ones, in parallel, recording per-partition materializations.",
)
def refresh_changed_repositories(
    context: dg.OpExecutionContext,
    config: RefreshChangedConfig,
    warehouse: WarehouseResource,
    search_embedder: EmbedderResource,
    settings: SettingsResource,
) -> Iterator[Any]:
    from symbiotic_assets.git.changes import plan_changes, refresh_many

    current = settings.get_settings()
    specs = current.all_repositories()
    if config.repositories:
        wanted = set(config.repositories)
        unknown = sorted(wanted - {s.name for s in specs})
        if unknown:
            raise dg.Failure(
                f"repositories {', '.join(unknown)} are not configured (symbiotic.yaml / "
                "SYMBIOTIC_REPOSITORIES)"
            )
        specs = [s for s in specs if s.name in wanted]
    embedder = search_embedder.get_embedder() if config.embed else None
    key = None
    if embedder is not None:
        from symbiotic_assets.search.commit_embeddings import model_key

        key = model_key(embedder)  # names the vectors; the model is not loaded for this
    plan = plan_changes(warehouse.database, specs, embedding_model=key)
    changed = plan.changed
    context.log.info(
        f"{len(specs)} repositories checked in {plan.seconds:.2f}s: {len(changed)} to refresh"
        + "".join(f"\n  {c.spec.name}: {'; '.join(c.reasons)}" for c in changed)
    )

    def on_done(outcome: Any) -> None:
        _notify(outcome.spec.name, "extracted", 1, 1)

    outcomes = refresh_many(
        warehouse.database, [c.spec for c in changed], workers=config.workers, on_done=on_done
    )
    errors = {o.spec.name: o.error for o in outcomes if not o.ok}
    # One connection for every repository: reopening the file per repository costs a
    # checkpoint each time (copying click's vectors: 0.37 s per clone that way, 0.19 s so).
    pending_changes: list[tuple[str, dict[str, Any]]] = []
    with warehouse.connect() as con:
        for outcome in outcomes:
            if not outcome.ok:
                context.log.error(f"{outcome.spec.name}: {outcome.error}")
                continue
            embedded: dict[str, Any] | None = None
            if embedder is not None:
                from symbiotic_assets.git.shared_history import reuse_commit_vectors
                from symbiotic_assets.search.commit_embeddings import embed_repository

                try:
                    copied = reuse_commit_vectors(con, outcome.spec.name, key or "")
                    e = embed_repository(con, outcome.spec.name, embedder,
                                         batch_size=search_embedder.batch_size)  # fmt: skip
                    embedded = {"model": key, "new_vectors": e.embedded + copied,
                                "reused_vectors": copied, "model_calls": e.model_calls,
                                "vectors": e.total}  # fmt: skip
                except Exception as exc:  # the git tables are in; report the embedding failure
                    errors[outcome.spec.name] = f"embedding failed: {exc}"
                    _rollback(con)
            changes: dict[str, Any] | None = None
            if embedder is not None:  # search's change terms and PR groups (search/change_terms)
                from symbiotic_assets.search.change_assets import refresh_changes

                try:
                    changes = refresh_changes(
                        con, outcome.spec, current.published_dir, publish=False
                    )
                    pending_changes.append((outcome.spec.name, changes))
                except Exception as exc:
                    errors[outcome.spec.name] = f"change terms failed: {exc}"
                    _rollback(con)
            yield from _materializations(outcome, embedded)
            stored = outcome.refresh.reachable_commits if outcome.refresh else 0
            git_count = _count_with_git(outcome.spec)
            yield dg.AssetCheckEvaluation(
                asset_key=COMMITS, check_name="commit_count_matches_git", partition=outcome.spec.name,
                passed=git_count == stored,
                metadata={"git_rev_list_count": git_count, "stored_reachable": stored},
            )  # fmt: skip
        yield from _publish_change_groups(con, current.published_dir, pending_changes, errors)
    summary = {
        "checked": len(specs),
        "changed": len(changed),
        "unchanged": len(specs) - len(changed),
        "failed": len(errors),
        "plan_seconds": round(plan.seconds, 3),
    }
    context.log.info(f"refresh summary: {summary}")
    if errors:
        raise dg.Failure(
            description=f"{len(errors)} of {len(changed)} repositories failed: "
            + "; ".join(f"{k}: {v}" for k, v in sorted(errors.items())),
            metadata={"errors": json.dumps(errors), **summary},
        )
    yield dg.Output(summary)


def _publish_change_groups(
    con: Any,
    published_dir: Path,
    pending: list[tuple[str, dict[str, Any]]],
    errors: dict[str, str],
) -> Iterator[dg.AssetMaterialization]:
    """Publish the PR groups once for the whole batch, then report each repository's terms.

    Publishing per repository rewrote every group of every repository each time: a
    cost of repositories x groups for a batch.
    """
    from symbiotic_assets.search.change_terms import publish_groups

    version: str | None = None
    if any(meta["groups_stale"] for _, meta in pending):
        try:
            version = publish_groups(con, published_dir / "search-changes")
        except Exception as exc:
            for name, _ in pending:
                errors[name] = f"publishing the PR groups failed: {exc}"
            _rollback(con)
            return
    for name, meta in pending:
        if meta["groups_stale"]:
            meta = {**meta, "groups_version": version, "groups_stale": False}
        yield dg.AssetMaterialization(asset_key=CHANGE_TERMS, partition=name, metadata=meta)


@dg.job(
    name="git_refresh_changed",
    description="Refresh every changed repository in one run: fingerprints, then parallel "
    "extraction, merges and commit embeddings for the changed ones only.",
    tags={"symbiotic/kind": "batch"},
)
def git_refresh_changed_job() -> None:
    refresh_changed_repositories()
