"""The MCP server over streamable HTTP at /mcp in `maas serve` (stateless: every request carries
the user's key as its bearer token; a missing or unknown key is 401 before MCP sees it).

The `mcp` SDK is imported, and its session manager started, on the first authorised request:
most deployments never call /mcp, and importing the SDK at start-up cost every `maas serve`
~2 s of cold start and ~25 MB of memory (`maas bench pipeline`)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx
from fastapi import FastAPI
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from maas.api.errors import body
from maas.api.identity import header
from maas.client import AsyncMaaS
from maas.credentials import hash_key
from maas.db.queries import q
from maas.errors import UNKNOWN_KEY
from maas.settings import Settings

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

PATH = "/mcp"


def bearer(headers: Mapping[str, str] | None) -> str:
    from mcp.server.mcpserver.exceptions import ToolError

    scheme, _, token = ((headers or {}).get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ToolError("unauthorized: send 'Authorization: Bearer <user key>'")
    return token.strip()


class McpEndpoint:
    """401 for a request without a live user key; else the MCP transport, started on first use
    in a task of its own (the session manager's task group must be entered and left by one
    task: not a request's, which ends)."""

    def __init__(self, app: FastAPI, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._inner: ASGIApp | None = None
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = await self._problem(scope)
        if problem is None:
            await (await self._started())(scope, receive, send)
            return
        refusal = JSONResponse(
            body("unauthorized", problem), 401, headers={"WWW-Authenticate": "Bearer"}
        )
        await refusal(scope, receive, send)

    async def aclose(self) -> None:
        """Stop the session manager, if it was started (the app's shutdown)."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _problem(self, scope: Scope) -> str | None:
        scheme, _, token = (header(scope, b"authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "missing API key: send 'Authorization: Bearer <user key>'"
        pool = self.app.state.api.runtime.pool  # set when the service has started
        if await pool.fetchval(q("user_by_key_hash"), hash_key(token.strip())) is None:
            return UNKNOWN_KEY
        return None

    async def _started(self) -> ASGIApp:
        async with self._lock:  # two first requests at once start one server
            if self._inner is None:
                self._inner = await self._start()
        return self._inner

    async def _start(self) -> ASGIApp:
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp

        from maas.mcpserver.tools import build_server

        server = build_server(self._open_client)
        server.streamable_http_app(
            streamable_http_path=PATH, stateless_http=True, json_response=True,
            host=self.settings.host,
        )  # fmt: skip
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._serve(server, ready), name="mcp-session-manager")
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({self._task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():  # the manager failed to start: say why, on this request
            waiting.cancel()
            self._task.result()
        return StreamableHTTPASGIApp(server.session_manager)

    async def _serve(self, server: MCPServer, ready: asyncio.Event) -> None:
        async with server.session_manager.run():
            ready.set()
            await self._stop.wait()

    def _open_client(self, headers: Mapping[str, str] | None) -> AsyncMaaS:
        transport = httpx.ASGITransport(app=self.app)
        return AsyncMaaS("http://maas", bearer(headers), transport=transport, max_retries=0)


def install(app: FastAPI, settings: Settings) -> McpEndpoint:
    """Mount /mcp; the caller awaits `endpoint.aclose()` when the app shuts down."""
    endpoint = McpEndpoint(app, settings)
    # POST only: a stateless server has no session to DELETE and nothing to push, and its GET
    # stream stayed open for ever (one key could hold every connection the server allows). The
    # streamable HTTP spec lets a server answer 405 to GET; the SDK's client accepts it.
    app.router.routes.append(Route(PATH, endpoint=endpoint, methods=["POST"]))
    return endpoint
