"""The one in-process harness: the real app under uvicorn on 127.0.0.1, on a fresh database.

    async with running_service(embedder="local") as svc:
        user = await svc.new_user("bench")
        async with svc.client(user.api_key) as http:
            await http.post("/v1/context", json={"query": "..."})

`running_service` creates the database fresh and drops it at the end (bench/database.py). The
service runs in offline mode (no LLM settings), with the harness's admin key, `poll_s=0.2` and no
per-key rate limit; any other setting can be overridden, and `serving(settings)` runs any
settings (e.g. a scripted LLM's). Everything a benchmark measures goes through HTTP; `dsn` is
there for read-only statistics. (`maas bench pipeline` runs `maas serve` as its own process
instead: serve_proc.py.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from bench.database import Database, fresh_database
from maas.app import create_app
from maas.settings import Settings

T = TypeVar("T")
R = TypeVar("R")

ADMIN_KEY = "bench-admin-key"  # the harness's, the benchmarks' and the tests' admin key
START_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = 180.0


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


class ServiceStopped(Exception):
    """uvicorn exited before the benchmark finished (it handles SIGINT/SIGTERM itself)."""


@dataclass(frozen=True)
class Served:
    """A running service: its URL, its app, its settings and the uvicorn task."""

    base_url: str
    app: FastAPI
    settings: Settings
    task: asyncio.Task[None]

    @property
    def dsn(self) -> str:
        url = self.settings.database_url
        assert url is not None  # the harness always names its database
        return url.get_secret_value()

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

    async def run(self, job: Coroutine[Any, Any, T]) -> T:
        """Run job, but give up if the server stops first (e.g. Ctrl-C: uvicorn takes SIGINT)."""
        work = asyncio.ensure_future(job)
        await asyncio.wait({work, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            raise ServiceStopped("the service stopped during the benchmark (Ctrl-C?)")
        return work.result()


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
async def serving(settings: Settings) -> AsyncIterator[Served]:
    """create_app(settings) under uvicorn on a free 127.0.0.1 port (lifespan on); stopped with
    should_exit."""
    sock = listen_socket()
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until_started(server, task)
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", app, settings, task)
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()


@asynccontextmanager
async def running_service(
    server_uri: str | None = None,
    template: str | None = None,
    keep_as: str | None = None,
    **overrides: Any,
) -> AsyncIterator[Served]:
    """The real service on a fresh database, torn down (database dropped, or kept under the name
    `keep_as` when nothing failed) at the end."""
    with tempfile.TemporaryDirectory(prefix="maas-bench-", ignore_cleanup_errors=True) as tmp:
        async with fresh_database(Path(tmp), server_uri, template, keep_as) as db:
            if template:
                overrides.setdefault("migrate_on_start", False)
            async with serving(bench_settings(db.dsn, Path(tmp), **overrides)) as served:
                yield served


def machine_info(db: Database, pg_version: str) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "postgres": pg_version,
        "database": db.kind,
    }


def _runner() -> asyncio.Runner:
    """uvloop when installed, like `maas serve` (uvicorn's loop="auto")."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def run_served(label: str, work: Coroutine[Any, Any, R]) -> R | None:
    """Run a benchmark coroutine beside the in-process service; None if the service stopped."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with _runner() as runner:
            return runner.run(work)
    except ServiceStopped as exc:
        print(f"\n{label}: {exc}", file=sys.stderr)
        return None


def publish(text: str, data: dict[str, Any], json_path: Path | None) -> None:
    """Print the table and, when asked, write the same figures as JSON."""
    print(text, flush=True)
    if json_path is not None:
        json_path.write_text(json.dumps(data, indent=2) + "\n")
        print(f"  json         {json_path}")
