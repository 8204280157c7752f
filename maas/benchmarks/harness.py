"""An in-process MaaS for benchmarks: the real app under uvicorn on 127.0.0.1, on a fresh database.

    async with running_service(embedder="local") as svc:
        user = await svc.new_user("bench")
        async with svc.client(user.api_key) as http:
            await http.post("/v1/context", json={"query": "..."})

The database is created fresh and dropped at the end: on `server_uri` when given (e.g. a test
session's Postgres), else on MAAS_DATABASE_URL's server, else on an embedded Postgres started in a
temporary data dir (and stopped at the end). The service runs in offline mode (no LLM settings),
with a fixed admin key, `poll_s=0.2` and no per-key rate limit; any other setting can be
overridden. Everything the
benchmark does goes through HTTP; `dsn` is there for read-only statistics.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import uvicorn
from pydantic import SecretStr

from maas.app import create_app
from maas.db.embedded import start_embedded, stop_embedded
from maas.db.pool import connect
from maas.settings import Settings

ADMIN_KEY = "bench-admin-key"
START_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = 180.0


def with_database(uri: str, name: str) -> str:
    """The same server URI pointing at database `name`."""
    return urlunsplit(urlsplit(uri)._replace(path=f"/{name}"))


async def _admin_sql(server_uri: str, sql: str) -> None:
    conn = await connect(with_database(server_uri, "postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(
    tmp: Path, server_uri: str | None = None, template: str | None = None
) -> AsyncIterator[str]:
    """Yield the DSN of a new empty database (or a copy of `template`), dropped at the end."""
    external = server_uri or os.environ.get("MAAS_DATABASE_URL") or None
    server = external if external else await asyncio.to_thread(start_embedded, tmp)
    name = f"maas_bench_{secrets.token_hex(6)}"
    copy = f" TEMPLATE {template}" if template else ""
    try:
        await _admin_sql(server, f"CREATE DATABASE {name}{copy}")
        try:
            yield with_database(server, name)
        finally:
            await _admin_sql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        if not external:
            await asyncio.to_thread(stop_embedded, tmp)


def bench_settings(dsn: str, data_dir: Path, **overrides: Any) -> Settings:
    """Offline settings for the benchmark service; `overrides` win (e.g. embedder="local")."""
    values: dict[str, Any] = {
        "database_url": SecretStr(dsn),
        "data_dir": data_dir,
        "admin_key": SecretStr(ADMIN_KEY),
        "llm_base_url": None,  # explicit, so MAAS_LLM_* in the environment cannot switch modes
        "llm_api_key": None,
        "poll_s": 0.2,
        "migrate_on_start": True,
        "shutdown_grace_s": 5.0,
        "log_level": "WARNING",
        # A benchmark client is one API key sending as fast as it can: no per-key rate limit.
        "rate_limit_per_min": 1e9,
        "rate_limit_burst": 1_000_000_000,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass(frozen=True)
class BenchUser:
    user_id: str
    name: str
    api_key: str


@dataclass(frozen=True)
class Served:
    """A running service: its URL, its database and its settings."""

    base_url: str
    dsn: str
    settings: Settings
    task: asyncio.Task[None]

    def client(self, api_key: str | None = None) -> httpx.AsyncClient:
        headers = {"X-MaaS-Client": "bench"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        return httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(HTTP_TIMEOUT_S)
        )

    async def new_user(self, name: str) -> BenchUser:
        """A fresh user through the admin API."""
        async with self.client(ADMIN_KEY) as http:
            resp = await http.post("/v1/admin/users", json={"name": name})
            resp.raise_for_status()
            body = resp.json()
        return BenchUser(str(body["user_id"]), name, str(body["api_key"]))

    def check_alive(self) -> None:
        """Raise if the server task has ended (crashed or was stopped, e.g. by Ctrl-C)."""
        if self.task.done():
            if not self.task.cancelled() and self.task.exception() is not None:
                raise RuntimeError("the service crashed") from self.task.exception()
            raise RuntimeError("the service stopped during the benchmark")


def listen_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def until_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if task.done():
            task.result()  # re-raise a crash
            raise RuntimeError("the service failed to start (see the log above)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the service did not start within {START_TIMEOUT_S:.0f}s")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def serve_settings(settings: Settings, dsn: str) -> AsyncIterator[Served]:
    """create_app(settings) under uvicorn on a free 127.0.0.1 port; stopped with should_exit."""
    sock = listen_socket()
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until_started(server, task)
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", dsn, settings, task)
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()


@asynccontextmanager
async def running_service(
    server_uri: str | None = None, template: str | None = None, **overrides: Any
) -> AsyncIterator[Served]:
    """The real service on a fresh database, torn down (database dropped) at the end."""
    with tempfile.TemporaryDirectory(prefix="maas-bench-", ignore_cleanup_errors=True) as tmp:
        async with fresh_database(Path(tmp), server_uri, template) as dsn:
            if template:
                overrides.setdefault("migrate_on_start", False)
            settings = bench_settings(dsn, Path(tmp), **overrides)
            async with serve_settings(settings, dsn) as served:
                yield served
