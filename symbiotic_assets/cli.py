"""The ``symbiotic`` command line.

``symbiotic run`` materializes everything for every configured repository,
recording runs in the same Dagster instance that ``dagster dev`` shows.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from symbiotic_assets.core.config import ConfigError, add_repository_to_config, load_settings
from symbiotic_assets.mcp.cli import mcp_command
from symbiotic_assets.memory.cli import import_command, recommend_command, record_app
from symbiotic_assets.search.cli import search_command

app = typer.Typer(
    name="symbiotic",
    help=(
        "Symbiotic: git history, fix-attempt memory, semantic search and cross-project analytics "
        "for AI-assisted software teams, built as Dagster assets over DuckDB.\n\n"
        "Start with `symbiotic run` (extracts every configured repository into the warehouse), "
        "then `make dev` for the Dagster UI. Repositories are listed in symbiotic.yaml; with none "
        "configured, this project's own repository is used."
    ),
    no_args_is_help=True,
    add_completion=False,
)
repos_app = typer.Typer(help="List and add the repositories Symbiotic reads.", no_args_is_help=True)
app.add_typer(repos_app, name="repos")
app.add_typer(record_app, name="record")
app.command("import")(import_command)
app.command("search")(search_command)
app.command("recommend")(recommend_command)
app.command("mcp")(mcp_command)

console = Console()

DAGSTER_YAML = """\
# Written by `symbiotic run` on first use. Steps that write the DuckDB warehouse share
# the pool `duckdb_warehouse`; one at a time may hold it (DuckDB allows one writer).
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
# The daemon (`dagster dev`) fails runs that never started and frees slots of finished runs;
# runs whose process died are recovered before each `symbiotic run` and by a sensor
# (symbiotic_assets/orchestration/run_recovery.py).
run_monitoring:
  enabled: true
  free_slots_after_run_end_seconds: 60
"""


# Jobs over all repositories that `symbiotic run` materializes after the git refresh
# (job `git_refresh_changed`: only changed repositories), in order. Each skips its work
# when its inputs did not change since it last ran.
_GLOBAL_JOBS: list[tuple[str, str]] = [
    ("memory_load", "memory load"),
    ("memory_learn", "recommender learn"),
    ("search_publish", "search publish"),
    ("analytics_refresh", "dbt marts + publish"),
]


def prepare_dagster_home() -> Path:
    """Point DAGSTER_HOME at $SYMBIOTIC_HOME/dagster (unless set) and give it a dagster.yaml."""
    settings = load_settings()
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text(DAGSTER_YAML, encoding="utf-8")
    return home


def root_cause(error: Any) -> str:
    """The innermost message of a Dagster SerializableErrorInfo chain (the one naming the input)."""
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    if error is None:
        return "run failed"
    text = str(error.message).strip()
    if not text:
        return "run failed"
    last = text.splitlines()[-1]
    # "package.module.SomeError: the message" -> "the message"
    head, sep, rest = last.partition(": ")
    return rest if sep and "." in head and " " not in head else last


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code=2)


@app.command()
def run(
    repository: Annotated[
        list[str] | None,
        typer.Option("--repository", "-r", help="Only these repositories (by name); repeatable."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Dagster's step logs.")
    ] = False,
) -> None:
    """Materialize everything: git history, merges and commit embeddings of the repositories
    that changed (one fingerprint check each), then the dbt marts and the published
    snapshot that dashboards and the API read (skipped when their inputs did not change)."""
    try:
        settings = load_settings()
        specs = settings.all_repositories()
    except ConfigError as exc:
        _fail(str(exc))
        return
    if repository:
        unknown = sorted(set(repository) - {s.name for s in specs})
        if unknown:
            _fail(f"unknown repositories {', '.join(unknown)}; see `symbiotic repos list`")
        specs = [s for s in specs if s.name in repository]
    if not specs:
        _fail("no repositories configured; add one with `symbiotic repos add PATH`")
    prepare_dagster_home()
    from symbiotic_assets.orchestration.run_recovery import prepare_run_process

    prepare_run_process(console.print)  # dead runs failed, their slots freed; Ctrl-C works
    verbosity = "INFO" if verbose else "WARNING"

    import dagster as dg

    from symbiotic_assets.definitions import defs
    from symbiotic_assets.git.assets import progress_listeners, repositories_partitions

    instance = dg.DagsterInstance.get()
    known = set(instance.get_dynamic_partitions(repositories_partitions.name or ""))
    new = [s.name for s in specs if s.name not in known]
    if new:
        instance.add_dynamic_partitions(repositories_partitions.name or "", new)
    log_config = {"loggers": {"console": {"config": {"log_level": verbosity}}}}

    def execute(
        job_name: str, run_config: dict[str, Any] | None = None
    ) -> tuple[bool, str, dict[str, str]]:
        """(success, first error, per-repository errors reported by the step)."""
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={**log_config, **(run_config or {})},
        )
        if result.success:
            return True, "", {}
        failures = [e for e in result.all_events if e.is_step_failure]
        data = failures[0].step_failure_data if failures else None
        if data is None:
            return False, "run failed", {}
        per_repo: dict[str, str] = {}
        meta = data.user_failure_data.metadata if data.user_failure_data else {}
        if "errors" in meta:
            per_repo = json.loads(str(getattr(meta["errors"], "value", meta["errors"])))
        return False, root_cause(data.error), per_repo

    # One fingerprint check per repository, here, before any Dagster run: a repository
    # where nothing moved costs a for-each-ref, not a run start-up.
    from symbiotic_assets.core.resources import EmbedderResource
    from symbiotic_assets.git.changes import plan_changes
    from symbiotic_assets.search.commit_embeddings import model_key

    plan = plan_changes(
        settings.warehouse, specs, embedding_model=model_key(EmbedderResource().get_embedder())
    )
    changed = [c.spec.name for c in plan.changed]
    console.print(
        f"{len(specs)} repositories checked in {plan.seconds:.2f}s: "
        f"{len(changed)} changed, {len(specs) - len(changed)} unchanged"
    )
    outcomes: list[tuple[str, bool, str]] = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("changed repositories", total=len(changed))
        detail = progress.add_task("", total=None, visible=False)

        def on_progress(repository: str, phase: str, done: int, total: int | None) -> None:
            if phase == "extracted":
                progress.advance(task)
            progress.update(
                detail,
                description=f"  {repository}: {phase}",
                completed=done,
                total=total,
                visible=True,
            )

        repo_errors: dict[str, str] = {}
        if changed:
            progress_listeners.append(on_progress)
            try:
                ok, error, repo_errors = execute(
                    "git_refresh_changed",
                    {
                        "ops": {
                            "refresh_changed_repositories": {"config": {"repositories": changed}}
                        }
                    },
                )
            finally:
                progress_listeners.remove(on_progress)
            if not ok and not repo_errors:  # the step itself failed: every repository with it
                repo_errors = dict.fromkeys(changed, error)
        for spec in specs:
            err = repo_errors.get(spec.name, "")
            outcomes.append((spec.name, not err, err))
        progress.update(detail, visible=False)

        # cross-repository steps, once the repositories are in: dbt marts, then publish
        for job_name, label in _GLOBAL_JOBS:
            progress.update(detail, description=f"  {label}", total=None, visible=True)
            ok, error, _ = execute(job_name)
            outcomes.append((label, ok, error))
        progress.update(detail, visible=False)

    _print_summary(settings.warehouse, outcomes)
    console.print(
        f"Published snapshot (Grafana, notebooks, API): [bold]{settings.published_dir}[/bold]"
    )
    if any(not ok for _, ok, _ in outcomes):
        raise typer.Exit(code=1)


def _print_summary(warehouse: str, outcomes: list[tuple[str, bool, str]]) -> None:
    from symbiotic_assets.core.warehouse import connect

    table = Table(title="Symbiotic: what was built")
    for col in ("repository", "status", "commits", "merges", "conflicts", "branch switches"):
        table.add_column(col)
    stats: dict[str, tuple] = {}
    degraded: list[tuple] = []
    try:
        with connect(warehouse, read_only=True, wait_seconds=10) as con:
            rows = con.execute(
                """
                SELECT r.repository,
                       (SELECT count(*) FROM git.commits c WHERE c.repository = r.repository AND c.is_reachable),
                       (SELECT count(*) FROM git.merges m WHERE m.repository = r.repository),
                       (SELECT count(*) FROM git.merges m WHERE m.repository = r.repository AND m.has_conflict),
                       CASE WHEN r.has_reflog THEN (SELECT count(*) FROM git.ref_events e
                            WHERE e.repository = r.repository AND e.ref_name = 'HEAD' AND e.is_switch)::VARCHAR
                            ELSE 'unknown (no reflog)' END
                FROM git.repositories r
                """
            ).fetchall()
            stats = {r[0]: r[1:] for r in rows}
            degraded = con.execute(
                """
                SELECT repository, sum(unknown_churn)::BIGINT, sum(unknown_verdicts)::BIGINT FROM (
                    SELECT repository, count(*) AS unknown_churn, 0 AS unknown_verdicts
                    FROM git.commits WHERE is_reachable AND files_changed IS NULL GROUP BY ALL
                    UNION ALL
                    SELECT repository, 0, count(*) FROM git.merges
                    WHERE status = 'error' GROUP BY ALL
                ) GROUP BY repository ORDER BY repository
                """
            ).fetchall()
    except Exception as exc:  # the summary must not hide the run's own outcome
        console.print(f"[yellow]could not read the warehouse for the summary: {exc}[/yellow]")
    for name, ok, _error in outcomes:
        s = stats.get(name, ("-", "-", "-", "-"))
        status = "[green]ok[/green]" if ok else "[red]failed[/red]"
        table.add_row(name, status, *(str(x) for x in s))
    console.print(table)
    for name, ok, error in outcomes:
        if not ok:
            console.print(f"[red]failed[/red] {name}: {error}", soft_wrap=True)
    for name, churn, verdicts in degraded:
        # a damaged or partial clone: extracted from what git could read, the rest unknown
        console.print(
            f"[yellow]warning[/yellow] {name}: {churn} commits with unknown churn, {verdicts} "
            "merges with unknown conflict status (objects missing from the clone; see "
            "docs/git-history.md, 'Partial and damaged clones')",
            soft_wrap=True,
        )
    console.print(f"Warehouse: [bold]{warehouse}[/bold]  (tables in schema git)")
    console.print(
        "Dagster UI: [bold]make dev[/bold] (runs and assets recorded in $SYMBIOTIC_HOME/dagster)"
    )


@repos_app.command("list")
def repos_list() -> None:
    """Show configured and discovered repositories and whether each can be read.

    One bad entry (a missing path, a symlink loop, a second path to a repository already
    listed) is shown with its status; it never stops the listing.
    """
    from symbiotic_assets.core.config import path_problem
    from symbiotic_assets.git.repository import GitRepository, RepositoryError

    try:
        settings = load_settings()
        specs, skipped = settings.repository_listing()
    except ConfigError as exc:
        _fail(str(exc))
        return
    table = Table(title=f"Repositories ({settings.config_file or 'no symbiotic.yaml: default'})")
    table.add_column("name", no_wrap=True)
    table.add_column("path", overflow="fold")
    table.add_column("status", overflow="fold")
    for spec in specs:
        try:
            problem = path_problem(spec.path)
            if problem:
                status = f"[red]{problem}[/red]"
            else:
                GitRepository.open(spec.name, spec.path)
                status = "[green]readable[/green]"
        except RepositoryError as exc:
            status = f"[red]{exc.cause}[/red]"
        except Exception as exc:  # one entry must not hide the others
            status = f"[red]cannot check: {type(exc).__name__}: {exc}[/red]"
        table.add_row(spec.name, str(spec.path), status)
    for item in skipped:
        status = (
            f"[yellow]skipped: same repository as {item.same_as.name!r} "
            f"({item.same_as.path}); read once[/yellow]"
        )
        table.add_row(item.spec.name, str(item.spec.path), status)
    for scan in settings.scan:  # a scan root that cannot be read finds nothing: say so
        problem = path_problem(scan.path)
        if problem:
            table.add_row("(scan)", str(scan.path), f"[red]{problem}; nothing found[/red]")
    console.print(table)


@repos_app.command("add")
def repos_add(
    path: Annotated[str, typer.Argument(help="A local git repository (work tree or bare).")],
    name: Annotated[
        str | None, typer.Option(help="Partition name; default: the folder name.")
    ] = None,
    config: Annotated[Path, typer.Option(help="Configuration file to write.")] = Path(
        "symbiotic.yaml"
    ),
) -> None:
    """Add a repository to symbiotic.yaml (checked to be a readable git repository first)."""
    from symbiotic_assets.core.config import absolute_path, path_problem, remote_problem, slugify
    from symbiotic_assets.git.repository import GitRepository, RepositoryError

    # checked on the raw text: Path("https://host/x") would fold '//' and look like a path
    remote = remote_problem(path)
    if remote:
        _fail(remote)
        return
    local = absolute_path(path, Path.cwd())
    problem = path_problem(local)
    if problem:
        _fail(problem)
        return
    label = name or slugify(local.name)
    try:
        GitRepository.open(label, local)
        spec = add_repository_to_config(config, local, name)
    except (RepositoryError, ConfigError) as exc:
        _fail(str(exc))
        return
    console.print(f"added [bold]{spec.name}[/bold] ({spec.path}) to {config}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
