"""``symbiotic search "..."``: find commits in plain language from the published index.

Register in ``symbiotic_assets/cli.py`` with ``app.command("search")(search_command)``.
Each search is recorded in the memory store (what was shown), so that a later
``--click N`` or an agent's ``record_click`` teaches the ranker.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def search_command(
    query: Annotated[
        str, typer.Argument(help="What you are looking for, in words or identifiers.")
    ],
    k: Annotated[int, typer.Option("--k", "-k", help="How many results.")] = 10,
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
    click: Annotated[
        int | None,
        typer.Option("--click", help="Record that result number N was the one you wanted."),
    ] = None,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="Record the search in the memory store.")
    ] = True,
) -> None:
    """Search commits across all repositories (semantic + lexical, learned from clicks)."""
    from symbiotic_assets.search.api import record_click, record_search, semantic_search
    from symbiotic_assets.search.index import IndexNotPublishedError

    try:
        results = semantic_search(
            query,
            k=k,
            repositories=repository or None,
            authors=author or None,
            since=since,
            until=until,
            paths=path or None,
            include_merges=include_merges,
        )
    except IndexNotPublishedError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(code=2) from None
    except (ValueError, TypeError) as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(code=2) from None
    if click is not None and not 1 <= click <= len(results):
        console.print(f"[red]error:[/red] --click {click}: there are {len(results)} results")
        raise typer.Exit(code=2)
    search_id = None
    if record and results:
        try:
            search_id = record_search(query, results)
            if click is not None:
                record_click(query, results[click - 1].hash, click, search_id=search_id)
        except Exception as exc:  # recording must never cost the user their results
            console.print(f"[yellow]could not record the search: {exc}[/yellow]", soft_wrap=True)
    if as_json:
        payload = {
            "query": query,
            "search_id": search_id,
            "results": [r.to_dict() for r in results],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    if not results:
        console.print(f"no commits match {query!r} with these filters")
        return
    table = Table(title=f"Commits for {query!r}")
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
            r.repository,
            r.date[:10],
            r.author,
            r.subject,
            f"{r.score:.2f}",
            r.why,
        )
    console.print(table)
