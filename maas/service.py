"""The composition root of a MaaS process: database, pools, models, listener, stage workers, the
express lane, maintenance loops and the extensions' host; start and stop."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from fastapi import FastAPI

from maas.api.context import ApiContext
from maas.credentials import bootstrap
from maas.db.embedded import start_embedded, stop_embedded
from maas.db.migrate import migrate
from maas.db.pool import GENERIC_PLANS, connect, create_pool
from maas.host import ExtensionHost, Started
from maas.llm.client import LLMConfig, OpenAIModel
from maas.llm.embed import (
    Embedder,
    LocalEmbedder,
    OpenAIEmbedder,
    local_embeddings_installed,
    model_slots,
    torch_threads,
)
from maas.llm.offline import OfflineModel
from maas.llm.tokens import encoding, seed_tiktoken_cache
from maas.llm.types import LanguageModel
from maas.params import ParamSource, params_from_settings
from maas.pipeline import maintenance
from maas.pipeline.lanes import Lanes
from maas.pipeline.repo import RunRepository
from maas.pipeline.runner import build_workers
from maas.pipeline.status import QUEUED
from maas.runtime.context import Models, Runtime
from maas.runtime.listener import Listener
from maas.runtime.loops import every, wait_any
from maas.runtime.signals import Signals
from maas.runtime.supervisor import Supervisor
from maas.settings import Settings

log = logging.getLogger(__name__)


def resolve_dsn(settings: Settings) -> str:
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return start_embedded(settings.data_dir)


def build_llm(settings: Settings) -> LanguageModel:
    if settings.offline:
        return OfflineModel(settings.token_encoding)
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "not-needed"
    return OpenAIModel(
        LLMConfig(
            base_url=settings.llm_base_url,
            api_key=key,
            model=settings.llm_model,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
            retry_after_cap_s=settings.llm_retry_after_cap_s,
            stage_deadline_s=settings.stage_deadline_s,
        )
    )


def build_embedder(settings: Settings) -> Embedder | None:
    if settings.embedder == "local" or (
        settings.embedder == "auto" and local_embeddings_installed()
    ):
        threads = torch_threads(settings.embed_threads)
        return LocalEmbedder(threads, model_slots(settings.embed_batches, threads))
    if settings.embedder == "openai":
        secret = settings.embedding_api_key or settings.llm_api_key
        return OpenAIEmbedder(
            settings.embedding_base_url or settings.llm_base_url,
            secret.get_secret_value() if secret else "not-needed",
            settings.embedding_model,
            settings.llm_timeout_s,
        )
    return None


class Service:
    """The composition root: builds the pools, the models, the listener, the supervisor, the
    stage workers and the express lane, hands extensions their host, and stops it all."""

    def __init__(self, settings: Settings, app: FastAPI, params: ParamSource | None = None) -> None:
        self.settings = settings
        self.signals = Signals(QUEUED)
        self.host = ExtensionHost(app, settings, self.signals, self.grace_left)
        if params is not None:  # else the extensions' (the Tuner's), else MAAS_PARAMS
            self.host.set_param_source(params)
        self.runtime: Runtime | None = None
        self.repo: RunRepository | None = None
        self.listener: Listener | None = None
        self.admin_key: str | None = None
        self.dsn = ""
        self._stop = asyncio.Event()
        self._supervisor: Supervisor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_started: float | None = None

    async def start(self) -> None:
        seed_tiktoken_cache()
        self._loop = asyncio.get_running_loop()
        llm, embedder = build_llm(self.settings), build_embedder(self.settings)
        encoding_name = self.settings.token_encoding
        # Loaded while the database starts, not in the first request: the token encoding
        # (~0.1 s) and a local embedder's model (seconds).
        warming = [
            asyncio.ensure_future(asyncio.to_thread(encoding, self.settings.token_encoding)),
            asyncio.ensure_future(embedder.warm() if embedder else asyncio.sleep(0)),
        ]
        try:
            self.dsn = await asyncio.to_thread(resolve_dsn, self.settings)
            if self.settings.migrate_on_start:
                await run_migrations(self.dsn)
            pool, search_pool = await self._pools()
            await self._credentials(pool)
            self.runtime = self._runtime(pool, search_pool, Models(llm, embedder, encoding_name))
        finally:
            await asyncio.gather(*warming)
        self.repo = RunRepository(pool, self.settings.lease_s, self.runtime.worker_id)
        self.listener = Listener(self.dsn, self.signals, pool, self.settings.probe_s)
        lanes = Lanes(self.runtime, self.repo)
        draining = lambda: self.draining  # noqa: E731 (read at each /health)
        health = self.listener.health
        api = ApiContext(self.runtime, lanes, self.repo, self.admin_key, health, draining,
                         health_parts=self.host.health_parts)  # fmt: skip
        self.runtime.metrics.add_state(lambda: api.scrape_state)
        self.host.app.state.api = api
        self.host.started(
            Started(
                pool,
                self.dsn,
                self.admin_key,
                self.runtime.params,
                self.runtime.worker_id,
                self.runtime.models.embedder.name if self.runtime.models.embedder else "none",
            )  # fmt: skip
        )
        self._start_tasks(self.runtime, self.repo, self.listener)
        # Serve only once NOTIFY wakes us; if it cannot, polling still works, so do not fail.
        await wait_any(5.0, self.listener.ready)

    async def _pools(self) -> tuple[Any, Any]:
        """The pool, and the search pool whose sessions plan each statement once."""
        s = self.settings
        pool = await create_pool(
            self.dsn,
            min_size=s.pool_min,
            max_size=s.pool_max,
            timeout_s=s.db_timeout_s,
            settings=s.turn_archive_settings,
        )
        search_pool = await create_pool(
            self.dsn,
            min_size=1,
            max_size=s.search_pool_max,
            timeout_s=s.db_timeout_s,
            settings=GENERIC_PLANS | s.turn_archive_settings,
        )
        return pool, search_pool

    def _runtime(self, pool: Any, search_pool: Any, models: Models) -> Runtime:
        params = self.host.param_source or params_from_settings(self.settings)
        return Runtime(
            self.settings,
            pool,
            models,
            params,
            self.signals,
            search_pool,
            stopping=self._stop,
            grace_left=self.grace_left,
        )

    async def _credentials(self, pool: Any) -> None:
        """The admin key (MAAS_ADMIN_KEY, else generated and kept in the data dir) and the demo
        user the login page offers, created on first start either way."""
        configured = self.settings.admin_key
        async with pool.acquire() as conn:
            generated = await bootstrap(conn, self.settings.data_dir, configured)
        self.admin_key = configured.get_secret_value() if configured else generated

    def _start_tasks(self, rt: Runtime, repo: RunRepository, listener: Listener) -> None:
        sup = self._supervisor = Supervisor(self._stop)
        stop = self._stop
        sup.start("listener", lambda: listener.run_forever(stop))
        for i, worker in enumerate(build_workers(rt, repo, stop)):
            sup.start(f"{worker.name}-{i}", worker.run_forever)
        s = rt.settings
        for name, period, job in (
            ("requeue", s.poll_s, maintenance.requeue),
            ("idle-archive", s.idle_scan_s, maintenance.queue_idle),
            ("cleanup", s.cleanup_s, maintenance.cleanup),
        ):
            run = functools.partial(job, rt, repo)
            sup.start(name, functools.partial(every, period, run, stop, name))
        sup.start("line-tokens", functools.partial(maintenance.line_tokens, rt, stop))
        for name, task in self.host.tasks:
            sup.start(name, functools.partial(task, stop))

    def begin_drain(self) -> None:
        """SIGTERM: stop claiming now; the grace period for in-flight work starts here.

        Safe to call from a signal handler or another thread.
        """
        if self._drain_started is None:
            self._drain_started = time.monotonic()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        if not self._stop.is_set():  # logged on the loop, not in the signal handler
            log.info(
                "draining: no new work is claimed; in-flight work has %.0f s", self.grace_left()
            )
        self._stop.set()

    @property
    def draining(self) -> bool:
        return self._stop.is_set()

    def grace_left(self) -> float:
        grace = self.settings.shutdown_grace_s
        if self._drain_started is None:
            return grace
        return max(grace - (time.monotonic() - self._drain_started), 0.1)

    async def stop(self) -> None:
        if self._supervisor is not None:
            await self._supervisor.shutdown(self.grace_left())
        if self.runtime is not None:
            closer = getattr(self.runtime.models.llm, "close", None)
            if closer is not None:
                await closer()
            await _close_pool(self.runtime.pool)
            if self.runtime.search_pool is not None:
                await _close_pool(self.runtime.search_pool)
        if self.settings.embedded:
            await asyncio.to_thread(stop_embedded, self.settings.data_dir)


async def _close_pool(pool: Any) -> None:
    try:
        await asyncio.wait_for(pool.close(), 5.0)
    except (TimeoutError, OSError):  # a request still holds a connection, or the database is away
        pool.terminate()


async def run_migrations(dsn: str) -> list[int]:
    conn = await connect(dsn)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
