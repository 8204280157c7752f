"""The MCP server over streamable HTTP at /mcp in `maas serve` (stateless: every request carries
the user's key as its bearer token; a missing or unknown key is 401 before MCP sees it)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from maas.api.errors import body
from maas.api.identity import header
from maas.client import AsyncMaaS
from maas.credentials import hash_key
from maas.db.queries import q
from maas.errors import UNKNOWN_KEY
from maas.mcpserver.tools import build_server
from maas.settings import Settings

PATH = "/mcp"


def bearer(headers: Mapping[str, str] | None) -> str:
    scheme, _, token = ((headers or {}).get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ToolError("unauthorized: send 'Authorization: Bearer <user key>'")
    return token.strip()


class KeyRequired:
    """401 for a request without a live user key; else the MCP transport."""

    def __init__(self, app: FastAPI, inner: StreamableHTTPASGIApp) -> None:
        self.app = app
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = await self._problem(scope)
        if problem is None:
            await self.inner(scope, receive, send)
            return
        refusal = JSONResponse(
            body("unauthorized", problem), 401, headers={"WWW-Authenticate": "Bearer"}
        )
        await refusal(scope, receive, send)

    async def _problem(self, scope: Scope) -> str | None:
        scheme, _, token = (header(scope, b"authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "missing API key: send 'Authorization: Bearer <user key>'"
        pool = self.app.state.api.runtime.pool  # set when the service has started
        if await pool.fetchval(q("user_by_key_hash"), hash_key(token.strip())) is None:
            return UNKNOWN_KEY
        return None


def install(app: FastAPI, settings: Settings) -> MCPServer:
    """Mount /mcp; the caller runs `server.session_manager.run()` in the app's lifespan."""

    def open_client(headers: Mapping[str, str] | None) -> AsyncMaaS:
        transport = httpx.ASGITransport(app=app)
        return AsyncMaaS("http://maas", bearer(headers), transport=transport, max_retries=0)

    server = build_server(open_client)
    server.streamable_http_app(
        streamable_http_path=PATH, stateless_http=True, json_response=True, host=settings.host
    )
    endpoint = KeyRequired(app, StreamableHTTPASGIApp(server.session_manager))
    app.router.routes.append(Route(PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
    return server
