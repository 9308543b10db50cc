"""Command line for the memory store: ``symbiotic record ...`` and ``symbiotic import``.

Agents that run as shell commands, and people correcting by hand, need the
same door as the Python API: the options map one to one onto the model
fields, validation errors name the field, and a retried command with the same
idempotency key (or the same content and timestamp) writes nothing.

The main CLI mounts these::

    app.add_typer(record_app, name="record")
    app.command("import")(import_command)
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape as rich_escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from symbiotic_assets.events.importer import import_jsonl
from symbiotic_assets.events.models import (
    InvalidRecordError,
    MemoryRecord,
    printable,
    validate_record,
)
from symbiotic_assets.events.store import MemoryStore, MemoryStoreError

record_app = typer.Typer(
    help="Record fix attempts, recommendation feedback, sessions and skill invocations "
    "in the memory store.",
    no_args_is_help=True,
)

console = Console()
err_console = Console(stderr=True)

StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="Memory store file. Default: $SYMBIOTIC_HOME/memory.sqlite.",
        dir_okay=False,
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        help="Client idempotency key; a retry with the same key writes nothing. "
        "Default: derived from the record's content."
    ),
]
TimestampOption = Annotated[
    str | None,
    typer.Option(help="When it happened, ISO 8601 with a UTC offset. Default: now."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the row id.")]


def _text(value: object) -> str:
    """Client text made safe to print: rich markup escaped, lone surrogates shown.

    Values quoted in messages come from the input; ``[/x]`` in a field would be read
    as markup (and crash rich), a lone surrogate would crash the terminal's encoder.
    """
    return rich_escape(printable(str(value)))


def _fail(message: str) -> None:
    err_console.print(f"[red]error:[/red] {_text(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _open(store: Path | None) -> MemoryStore:
    try:
        return MemoryStore(store)
    except MemoryStoreError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


def _record(kind: str, label: str, fields: dict[str, Any], store: Path | None, quiet: bool) -> None:
    # Options left out are not passed, so model defaults apply and an absent
    # timestamp stays out of the derived idempotency key.
    given = {k: v for k, v in fields.items() if v is not None}
    try:
        record: MemoryRecord = validate_record(kind, given)
    except InvalidRecordError as exc:
        _fail(str(exc))
        return
    with _open(store) as opened:
        path = opened.path
        try:
            result = opened.record(record)
        except (ValueError, OverflowError, TypeError, sqlite3.Error) as exc:
            # Validation passed, so this is the file (locked, read-only, full) or a
            # value SQLite cannot hold: say which, without a traceback.
            _fail(f"{path}: cannot store the {label}: {exc}")
            return
    if quiet:
        console.print(result.id)
    elif result.created:
        console.print(f"recorded {label} {result.id} in {_text(path)}", highlight=False)
    else:
        console.print(
            f"{label} {result.id} was already recorded with this idempotency key; nothing written",
            highlight=False,
        )


@record_app.command("fix-attempt")
def record_fix_attempt_command(
    issue_type: Annotated[
        str, typer.Option(help="formatting, type_error, security, ...; new types are accepted.")
    ],
    message: Annotated[str, typer.Option(help="The issue as the tool reported it.")],
    stage: Annotated[str, typer.Option(help="fast, comprehensive, or the tool (mypy, bandit).")],
    agent: Annotated[str, typer.Option(help="The agent that tried, e.g. RefactoringAgent.")],
    strategy: Annotated[str, typer.Option(help="The strategy the agent chose, e.g. refactor.")],
    success: Annotated[bool, typer.Option("--success/--failure", help="Whether the fix worked.")],
    file_path: Annotated[str | None, typer.Option(help="File the issue is in.")] = None,
    line_number: Annotated[int | None, typer.Option(help="Line of the issue.")] = None,
    session_id: Annotated[str | None, typer.Option(help="Agent session id.")] = None,
    project: Annotated[str | None, typer.Option(help="Project or repository name.")] = None,
    language: Annotated[str | None, typer.Option(help="Programming language.")] = None,
    timestamp: TimestampOption = None,
    idempotency_key: KeyOption = None,
    store: StoreOption = None,
    quiet: QuietOption = False,
) -> None:
    """Record one fix attempt and its outcome."""
    _record(
        "fix_attempt",
        "fix attempt",
        {
            "issue_type": issue_type,
            "message": message,
            "file_path": file_path,
            "line_number": line_number,
            "stage": stage,
            "agent": agent,
            "strategy": strategy,
            "success": success,
            "session_id": session_id,
            "project": project,
            "language": language,
            "timestamp": timestamp,
            "idempotency_key": idempotency_key,
        },
        store,
        quiet,
    )


@record_app.command("feedback")
def record_feedback_command(
    recommendation_id: Annotated[str, typer.Option(help="The recommendation this is about.")],
    shown: Annotated[
        bool, typer.Option("--shown/--not-shown", help="Whether it was shown.")
    ] = True,
    followed: Annotated[
        bool,
        typer.Option("--followed/--not-followed", help="Whether the agent followed it."),
    ] = False,
    outcome: Annotated[
        str, typer.Option(help="succeeded, failed or unknown (not yet known).")
    ] = "unknown",
    confidence: Annotated[
        float | None, typer.Option(help="Confidence given with the recommendation, 0 to 1.")
    ] = None,
    fix_attempt_id: Annotated[
        int | None, typer.Option(help="The fix attempt that followed, if recorded.")
    ] = None,
    issue_type: Annotated[str | None, typer.Option(help="Issue type it was for.")] = None,
    agent: Annotated[str | None, typer.Option(help="Agent recommended.")] = None,
    strategy: Annotated[str | None, typer.Option(help="Strategy recommended.")] = None,
    session_id: Annotated[str | None, typer.Option(help="Agent session id.")] = None,
    project: Annotated[str | None, typer.Option(help="Project or repository name.")] = None,
    timestamp: TimestampOption = None,
    idempotency_key: KeyOption = None,
    store: StoreOption = None,
    quiet: QuietOption = False,
) -> None:
    """Record what happened to a recommendation: shown, followed, outcome."""
    _record(
        "feedback",
        "feedback",
        {
            "recommendation_id": recommendation_id,
            "fix_attempt_id": fix_attempt_id,
            "issue_type": issue_type,
            "agent": agent,
            "strategy": strategy,
            "shown": shown,
            "followed": followed,
            "outcome": outcome,
            "confidence": confidence,
            "session_id": session_id,
            "project": project,
            "timestamp": timestamp,
            "idempotency_key": idempotency_key,
        },
        store,
        quiet,
    )


@record_app.command("session")
def record_session_command(
    session_id: Annotated[str, typer.Option(help="The agent session this event belongs to.")],
    phase: Annotated[str, typer.Option(help="start or end of the session.")],
    project: Annotated[
        str | None,
        typer.Option(help="Project; analytics match it to the repository of the same name."),
    ] = None,
    language: Annotated[str | None, typer.Option(help="Main programming language.")] = None,
    duration_seconds: Annotated[
        float | None, typer.Option(help="Length of the session (end events only).")
    ] = None,
    quality_score: Annotated[
        float | None, typer.Option(help="Quality score at the end of the session, 0 to 100.")
    ] = None,
    tool: Annotated[
        list[str] | None,
        typer.Option("--tool", help="A tool used in the session; repeat for several."),
    ] = None,
    timestamp: TimestampOption = None,
    idempotency_key: KeyOption = None,
    store: StoreOption = None,
    quiet: QuietOption = False,
) -> None:
    """Record the start or the end of an agent session."""
    _record(
        "session",
        "session event",
        {
            "session_id": session_id,
            "phase": phase,
            "project": project,
            "language": language,
            "duration_seconds": duration_seconds,
            "quality_score": quality_score,
            "tools_used": list(tool) if tool else None,
            "timestamp": timestamp,
            "idempotency_key": idempotency_key,
        },
        store,
        quiet,
    )


@record_app.command("skill")
def record_skill_command(
    skill: Annotated[str, typer.Option(help="The skill (agent or tool capability) invoked.")],
    completed: Annotated[
        bool,
        typer.Option("--completed/--not-completed", help="Whether the invocation ran to its end."),
    ],
    succeeded: Annotated[
        bool | None,
        typer.Option(
            "--succeeded/--failed",
            help="Whether it achieved its goal; leave out when not known yet.",
        ),
    ] = None,
    session_id: Annotated[str | None, typer.Option(help="Agent session id.")] = None,
    project: Annotated[str | None, typer.Option(help="Project or repository name.")] = None,
    language: Annotated[str | None, typer.Option(help="Programming language.")] = None,
    complexity: Annotated[
        str | None, typer.Option(help="Complexity of the task, e.g. low, medium, high.")
    ] = None,
    duration_seconds: Annotated[float | None, typer.Option(help="How long it ran.")] = None,
    error_type: Annotated[
        str | None, typer.Option(help="Kind of error when it failed, e.g. timeout.")
    ] = None,
    timestamp: TimestampOption = None,
    idempotency_key: KeyOption = None,
    store: StoreOption = None,
    quiet: QuietOption = False,
) -> None:
    """Record one invocation of a skill and how it ended."""
    _record(
        "skill_invocation",
        "skill invocation",
        {
            "skill": skill,
            "session_id": session_id,
            "project": project,
            "language": language,
            "complexity": complexity,
            "completed": completed,
            "succeeded": succeeded,
            "duration_seconds": duration_seconds,
            "error_type": error_type,
            "timestamp": timestamp,
            "idempotency_key": idempotency_key,
        },
        store,
        quiet,
    )


def import_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSON-lines file: one record per line, 'type' = fix_attempt (default), "
            "feedback, session, skill_invocation, search or search_click.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    store: StoreOption = None,
    strict: Annotated[
        bool, typer.Option(help="Exit with status 1 when any line was quarantined.")
    ] = False,
) -> None:
    """Import records from a JSON-lines file; bad lines are quarantined, not fatal."""
    size = file.stat().st_size
    with (
        _open(store) as opened,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress,
    ):
        task = progress.add_task(f"importing {_text(file.name)}", total=size or None)
        try:
            result = import_jsonl(
                file, opened, on_progress=lambda done: progress.update(task, completed=done)
            )
        except (OSError, MemoryStoreError, sqlite3.Error) as exc:
            _fail(f"{file}: {exc}")
            return
        progress.update(task, completed=size)
        path = opened.path
        examples = opened.list_quarantine(result.source, limit=10) if result.quarantined else []

    table = Table(title=f"Imported {_text(file.name)} into {_text(path)}")
    for column in ("read", "stored", "duplicates", "quarantined"):
        table.add_column(column, justify="right")
    table.add_row(
        str(result.read), str(result.stored), str(result.duplicates), str(result.quarantined)
    )
    console.print(table)
    if result.quarantined:
        console.print(
            f"[yellow]{result.quarantined} line(s) quarantined[/yellow] "
            "(table 'quarantine' in the store); first ones:",
            highlight=False,
        )
        for row in examples:
            console.print(f"  line {row['line_number']}: {_text(row['reason'])}", highlight=False)
        if strict:
            raise typer.Exit(code=1)


def recommend_command(
    issue_type: Annotated[str, typer.Option(help="formatting, type_error, security, ...")],
    message: Annotated[str, typer.Option(help="The issue as the tool reported it.")],
    file_path: Annotated[str | None, typer.Option(help="File the issue is in.")] = None,
    stage: Annotated[str | None, typer.Option(help="fast, comprehensive, or the tool.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    evidence: Annotated[
        int, typer.Option(help="Similar past attempts to show (0-100).", min=0, max=100)
    ] = 5,
) -> None:
    """Which agent and strategy fixed issues like this one, and how sure we are.

    Reads the published recommender (job memory_learn); record the outcome with
    `symbiotic record feedback --recommendation-id ...`.
    """
    import json

    from symbiotic_assets.memory.api import recommend_strategy

    issue = {"issue_type": issue_type, "message": message, "file_path": file_path, "stage": stage}
    for option, value in issue.items():
        if value is not None and printable(value) != value:
            _fail(
                f"--{option.replace('_', '-')}: contains a lone UTF-16 surrogate (not valid text)"
            )
    try:
        rec = recommend_strategy(issue, max_evidence=max(evidence, 1))
    except ValueError as exc:
        _fail(str(exc))
        return
    if as_json:
        data = rec.to_dict()
        data["evidence"] = data["evidence"][:evidence]
        typer.echo(json.dumps(data, indent=2))
        return
    if rec.status != "ok":
        console.print(f"[yellow]{_text(rec.reason)}[/yellow]", highlight=False)
        return
    console.print(
        f"[bold]{_text(rec.agent_strategy)}[/bold]  confidence {rec.confidence:.2f}  "
        f"(recommendation id {rec.recommendation_id})",
        highlight=False,
    )
    if evidence and rec.evidence:
        table = Table(title="Similar past attempts")
        for col in ("similarity", "outcome", "agent:strategy", "when (UTC)", "issue"):
            table.add_column(col)
        for e in rec.evidence[:evidence]:
            table.add_row(
                f"{e.similarity:.2f}",
                "[green]succeeded[/green]" if e.success else "[red]failed[/red]",
                _text(f"{e.agent}:{e.strategy}"),
                e.timestamp[:16],
                _text(f"{e.issue_type}: {e.message[:60]}"),
            )
        console.print(table)
