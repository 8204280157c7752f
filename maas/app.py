"""create_app: the HTTP face of the composition root (maas/service.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from maas import __version__
from maas.api import (
    admin,
    chat,
    docs,
    errors,
    limits,
    memories,
    openai_compat,
    runs,
    threads,
    users,
)
from maas.host import ExtensionHost
from maas.mcpserver import http as mcp_http
from maas.params import ParamSource
from maas.service import Service
from maas.settings import Settings
from maas.testsuite import api as test_runs
from maas.testsuite import manager as test_run_manager

log = logging.getLogger(__name__)
Extension = Callable[[ExtensionHost], None]


def create_app(
    settings: Settings,
    params: ParamSource | None = None,
    extensions: list[Extension] | None = None,
) -> FastAPI:
    """The service runs inside the app's lifespan; extensions (web UI, self-learning) mount on
    its host without maas importing them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        log.info("MaaS %s ready (%s mode)", __version__, settings.mode)
        try:
            yield
        finally:
            await mcp.aclose()
            await service.stop()

    app = FastAPI(
        title="MaaS — Memory as a Service",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served locally under a CSP (maas/api/docs.py), not from a CDN
        redoc_url=None,
    )
    service = Service(settings, app, params)
    app.state.service = service
    errors.install(app)
    limits.install(app, settings)
    for module in (chat, openai_compat, runs, threads, memories, users, admin, test_runs):
        app.include_router(module.router)
    docs.install(app)
    mcp = mcp_http.install(app, settings)
    test_run_manager.install(service.host)
    for extend in extensions or []:
        extend(service.host)
    return app
