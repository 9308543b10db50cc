"""``symbiotic mcp``: serve the MCP server over stdio (default) or local streamable HTTP.

Register in ``symbiotic_assets/cli.py`` with ``app.command("mcp")(mcp_command)``.

Over stdio, stdout is the protocol channel: nothing else may print there, so this
command writes nothing itself and the SDK logs to stderr. HTTP is for agents that
cannot spawn a process; it binds to 127.0.0.1 only and requires a bearer token from
``SYMBIOTIC_MCP_TOKEN``, because the recording tools write to the memory store.
"""

from __future__ import annotations

import hmac
import sys
from typing import Annotated, Any

import typer

TOKEN_ENV = "SYMBIOTIC_MCP_TOKEN"
HTTP_HOST = "127.0.0.1"


def mcp_command(
    http: Annotated[
        bool,
        typer.Option(
            "--http",
            help=f"Serve streamable HTTP on {HTTP_HOST} instead of stdio "
            f"(bearer token from ${TOKEN_ENV}).",
        ),
    ] = False,
    port: Annotated[int, typer.Option(help="Port for --http.", min=1, max=65535)] = 8765,
) -> None:
    """Serve Symbiotic's tools to coding agents over MCP (stdio unless --http)."""
    from symbiotic_assets.mcp.server import build_server

    server = build_server()
    if not http:
        server.run("stdio")
        return
    from symbiotic_assets.core.config import mcp_token

    token = mcp_token()
    if len(token) < 16:
        print(
            f"error: --http needs ${TOKEN_ENV} set to a secret of at least 16 characters",
            file=sys.stderr,
        )
        raise typer.Exit(code=2)
    serve_http(server, port, token)


def bearer_token_matches(header: bytes, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` as a bearer credential.

    HTTP compares auth schemes case-insensitively (RFC 9110 11.1), so ``bearer`` and
    ``BEARER`` are ``Bearer``; one or more spaces may separate scheme and token. The
    token itself is compared exactly, in constant time.
    """
    scheme, _, credentials = header.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(credentials.strip(b" "), token.encode())


def serve_http(server: Any, port: int, token: str) -> None:
    """Streamable HTTP at ``http://127.0.0.1:PORT/mcp``, every request checked for the token."""
    import uvicorn

    app = server.streamable_http_app()

    async def guarded(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not bearer_token_matches(given, token):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"text/plain"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b"missing or wrong bearer token"})
                return
        await app(scope, receive, send)

    uvicorn.run(guarded, host=HTTP_HOST, port=port, log_level="warning", lifespan="on")
