"""``symbiotic search "..."``: find commits in plain language from the published index.

Register in ``symbiotic_assets/cli.py`` with ``app.command("search")(search_command)``.
Each search is recorded in the memory store (what was shown), so that a later
``--click N`` or an agent's ``record_click`` teaches the ranker.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def _usage_error(message: str) -> typer.Exit:
    """Print ``message`` to stderr and return the exit (status 2) for the caller to raise."""
    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    err_console.print(f"[red]error:[/red] {escape(text)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def parse_when(option: str, value: str | None) -> datetime | None:
    """``--since``/``--until`` as an aware UTC datetime; exit 2 naming the option otherwise.

    Checked here, before the index is opened, so that a typo is reported as the
    option's problem and an extreme value (``9999-12-31T23:00:00-01:00``) as out of
    range rather than as an overflow deep in the filter code.
    """
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _usage_error(
            f"{option} {value!r}: expected an ISO date such as 2024-03-01 "
            "(or a datetime such as 2024-03-01T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise _usage_error(
            f"{option} {value!r}: outside the calendar once converted to UTC"
        ) from None


def search_command(
    query: Annotated[
        str, typer.Argument(help="What you are looking for, in words or identifiers.")
    ],
    k: Annotated[
        int, typer.Option("--k", "-k", help="How many results (1-1000).", min=1, max=1000)
    ] = 10,
    repository: Annotated[
        list[str] | None, typer.Option("--repository", "-r", help="Only these repositories.")
    ] = None,
    author: Annotated[
        list[str] | None, typer.Option("--author", "-a", help="Author name contains this.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Authored on or after this date (ISO, UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Authored before this date (ISO, UTC).")] = None,
    path: Annotated[
        list[str] | None, typer.Option("--path", "-p", help="Touching a path under this prefix.")
    ] = None,
    include_merges: Annotated[
        bool, typer.Option("--include-merges", help="Include merge commits.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    commits: Annotated[
        bool,
        typer.Option("--commits", help="One row per commit instead of one per change (PR)."),
    ] = False,
    click: Annotated[
        int | None,
        typer.Option("--click", help="Record that result number N was the one you wanted."),
    ] = None,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="Record the search in the memory store.")
    ] = True,
) -> None:
    """Search commits across all repositories (semantic + lexical, learned from clicks)."""
    from symbiotic_assets.search.api import (
        changes_of,
        grouped_pool,
        record_click,
        record_search,
        semantic_search,
    )
    from symbiotic_assets.search.index import IndexNotPublishedError

    if re.search(r"[\ud800-\udfff]", query):
        raise _usage_error("QUERY: contains bytes that are not valid UTF-8")
    if not query.strip():
        raise _usage_error("QUERY: must not be empty")
    after, before = parse_when("--since", since), parse_when("--until", until)
    if click is not None and click < 1:
        raise _usage_error(f"--click {click}: result numbers start at 1")
    try:
        results = semantic_search(
            query,
            k=k if commits else grouped_pool(k),
            repositories=repository or None,
            authors=author or None,
            since=after,
            until=before,
            paths=path or None,
            include_merges=include_merges,
        )
        changes = [] if commits else changes_of(results, k)
    except IndexNotPublishedError as exc:
        raise _usage_error(str(exc)) from None
    except (ValueError, TypeError) as exc:
        raise _usage_error(str(exc)) from None
    if changes:  # what is shown, in the order shown: the commits of the first k changes
        results = [r for ch in changes for r in ch.commits]
    # --click N names a row as shown: a change (its best commit is recorded) or a commit
    rows = [ch.commits[0] for ch in changes] if changes else results
    if click is not None and not 1 <= click <= len(rows):
        raise _usage_error(f"--click {click}: there are {len(rows)} results")
    search_id = None
    if record and results:
        try:
            search_id = record_search(query, results)
            if click is not None:
                picked = rows[click - 1]
                rank = next(i for i, r in enumerate(results, start=1) if r.hash == picked.hash)
                record_click(query, picked.hash, rank, search_id=search_id)
        except Exception as exc:  # recording must never cost the user their results
            console.print(f"[yellow]could not record the search: {exc}[/yellow]", soft_wrap=True)
    if as_json:
        payload = {
            "query": query,
            "search_id": search_id,
            "results": [r.to_dict() for r in results],
        }
        if not commits:
            payload["changes"] = [c.to_dict() | {"commits": [r.hash for r in c.commits]}
                                  for c in changes]  # fmt: skip
        typer.echo(json.dumps(payload, indent=2))
        return
    if not results:
        console.print(f"no commits match {escape(repr(query))} with these filters")
        return
    if not commits:
        _print_changes(query, changes)
        return
    table = Table(title=f"Commits for {escape(repr(query))}")
    for col, kw in (
        ("#", {"justify": "right"}),
        ("hash", {"no_wrap": True}),
        ("repository", {}),
        ("date", {"no_wrap": True}),
        ("author", {}),
        ("subject", {"overflow": "fold"}),
        ("score", {"justify": "right"}),
        ("why", {"overflow": "fold"}),
    ):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    for r in results:
        table.add_row(
            str(r.rank),
            r.hash[:10],
            escape(r.repository),
            r.date[:10],
            escape(r.author),
            escape(r.subject),
            f"{r.score:.2f}",
            escape(r.why),
        )
    console.print(table)


def _print_changes(query: str, changes: list) -> None:  # type: ignore[type-arg]
    """One row per change: PR title, number and branch, its matching commits, its files."""
    table = Table(title=f"Changes for {escape(repr(query))}")
    for col, kw in (
        ("#", {"justify": "right"}),
        ("change", {"overflow": "fold"}),
        ("repository", {}),
        ("commits", {"overflow": "fold"}),
        ("files", {"overflow": "fold"}),
        ("score", {"justify": "right"}),
    ):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    for ch in changes:
        label = escape(ch.title)
        if ch.pr_number is not None:
            label += f"\n[dim]#{ch.pr_number}{' ' + escape(ch.branch) if ch.branch else ''}[/dim]"
        shown = "\n".join(f"{c.hash[:10]} {escape(c.subject)}" for c in ch.commits[:5])
        if len(ch.commits) > 5:
            shown += f"\n... {len(ch.commits) - 5} more"
        files = ", ".join(ch.paths[:4]) + (" ..." if len(ch.paths) > 4 else "")
        table.add_row(str(ch.rank), label, escape(ch.repository), shown, escape(files),
                      f"{ch.score:.2f}")  # fmt: skip
    console.print(table)
