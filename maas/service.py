"""The running service: database, listener, stage workers and maintenance loops."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from maas.credentials import bootstrap
from maas.db.embedded import start_embedded, stop_embedded
from maas.db.migrate import migrate
from maas.db.pool import GENERIC_PLANS, connect, create_pool
from maas.db.queries import q
from maas.llm.client import LLMConfig, OpenAIModel
from maas.llm.embed import Embedder, LocalEmbedder, OpenAIEmbedder, local_embeddings_installed
from maas.llm.offline import OfflineModel
from maas.llm.tokens import encoding, seed_tiktoken_cache
from maas.llm.types import LanguageModel
from maas.params import BuiltinParams, ParamSource
from maas.pipeline.express import ExpressLane
from maas.pipeline.runner import build_workers
from maas.runtime.context import Runtime
from maas.runtime.listener import Listener
from maas.runtime.signals import Signals, wait_any
from maas.runtime.supervisor import Supervisor
from maas.settings import Settings

log = logging.getLogger(__name__)


def params_from_settings(settings: Settings) -> ParamSource:
    """MAAS_PARAMS (JSON) overrides defaults under a version named by its content, so runs made
    with different overrides are never compared as if alike. Bad names or values stop start-up."""
    if not settings.params:
        return BuiltinParams()
    digest = hashlib.sha256(json.dumps(settings.params, sort_keys=True).encode()).hexdigest()
    return BuiltinParams(settings.params, version=f"env-{digest[:10]}")


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
    if settings.embedder == "auto":
        return LocalEmbedder() if local_embeddings_installed() else None
    if settings.embedder == "local":
        return LocalEmbedder()
    if settings.embedder == "openai":
        secret = settings.embedding_api_key or settings.llm_api_key
        return OpenAIEmbedder(
            settings.embedding_base_url or settings.llm_base_url,
            secret.get_secret_value() if secret else "not-needed",
            settings.embedding_model,
            settings.llm_timeout_s,
        )
    return None


@dataclass
class Service:
    settings: Settings
    params: ParamSource | None = None  # None: built-in defaults + MAAS_PARAMS overrides
    admin_key: str | None = None
    runtime: Runtime | None = None
    listener: Listener | None = None
    dsn: str = ""
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    scrape_state: dict[str, Any] = field(default_factory=dict)  # filled by GET /metrics
    _supervisor: Supervisor | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _drain_started: float | None = None
    # Extensions (self-learning, web) add supervised background jobs; each gets the stop event.
    extra_tasks: list[tuple[str, Callable[[asyncio.Event], Awaitable[None]]]] = field(
        default_factory=list
    )

    async def start(self) -> None:
        seed_tiktoken_cache()
        self._loop = asyncio.get_running_loop()
        # the token encoding (~0.1 s to load) loads while the database starts, not in a request
        tokens = asyncio.ensure_future(asyncio.to_thread(encoding, self.settings.token_encoding))
        self.dsn = await asyncio.to_thread(resolve_dsn, self.settings)
        if self.settings.migrate_on_start:
            await run_migrations(self.dsn)
        pool = await create_pool(
            self.dsn,
            min_size=self.settings.pool_min,
            max_size=self.settings.pool_max,
            timeout_s=self.settings.db_timeout_s,
        )
        search_pool = await create_pool(
            self.dsn,
            min_size=1,
            max_size=self.settings.search_pool_max,
            timeout_s=self.settings.db_timeout_s,
            settings=GENERIC_PLANS,
        )
        await self._credentials(pool)
        signals = Signals()
        self.runtime = Runtime(
            self.settings,
            pool,
            build_llm(self.settings),
            build_embedder(self.settings),
            self._params(),
            signals,
            stopping=self._stop,
            grace_left=self.grace_left,
            search_pool=search_pool,
        )
        self.runtime.express = ExpressLane(self.runtime)
        self.listener = Listener(self.dsn, signals, pool, self.settings.probe_s)
        self.runtime.metrics.add_state(lambda: self.scrape_state)
        self._start_tasks(self.runtime, self.listener)
        # Serve only once NOTIFY wakes us; if it cannot, polling still works, so do not fail.
        await wait_any(5.0, self.listener.ready)
        await tokens

    async def _credentials(self, pool: Any) -> None:
        if self.settings.admin_key is not None:
            self.admin_key = self.settings.admin_key.get_secret_value()
            return
        async with pool.acquire() as conn:
            self.admin_key, _ = await bootstrap(conn, self.settings.data_dir)

    def _start_tasks(self, rt: Runtime, listener: Listener) -> None:
        sup = self._supervisor = Supervisor(self._stop)
        sup.start("listener", lambda: listener.run_forever(self._stop))
        for i, worker in enumerate(build_workers(rt, self._stop)):
            sup.start(f"{worker.name}-{i}", worker.run_forever)
        sup.start("requeue", lambda: self._every(rt.settings.poll_s, self._requeue))
        sup.start("idle-archive", lambda: self._every(rt.settings.idle_scan_s, self._idle))
        sup.start("cleanup", lambda: self._every(rt.settings.cleanup_s, self._cleanup))
        for name, job in self.extra_tasks:
            sup.start(name, functools.partial(job, self._stop))

    def add_task(self, name: str, job: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Register a background job before start(); it runs supervised until shutdown."""
        self.extra_tasks.append((name, job))

    async def _every(self, period: float, job: Any) -> None:
        while not self._stop.is_set():
            try:
                await job()
            except Exception:  # the database may be briefly away
                log.exception("maintenance job %s failed", job.__name__)
            await wait_any(period, self._stop)

    async def _requeue(self) -> None:
        rt = self._rt()
        runs = await rt.pool.fetch(q("requeue_stale_runs"), rt.settings.max_attempts)
        jobs = await rt.pool.fetch(q("requeue_stale_archive_jobs"), rt.settings.max_attempts)
        if runs or jobs:
            log.warning("requeued %d stale runs and %d archive jobs", len(runs), len(jobs))
            rt.signals.wake_all()

    async def _idle(self) -> None:
        rt = self._rt()
        params = await rt.params.active()
        if await rt.pool.fetch(q("queue_idle_threads"), params.num("archivist.idle_s")):
            rt.signals.on_archive()

    async def _cleanup(self) -> None:
        rt = self._rt()
        await rt.pool.execute(q("prune_finished_runs"), rt.settings.retention_days)
        await rt.pool.execute(q("prune_llm_calls"), rt.settings.retention_days)

    def _params(self) -> ParamSource:
        if self.params is None:
            self.params = params_from_settings(self.settings)
        return self.params

    def _rt(self) -> Runtime:
        assert self.runtime is not None, "service not started"
        return self.runtime

    def begin_drain(self) -> None:
        """SIGTERM: stop claiming now; the grace period for in-flight work starts here.

        Safe to call from a signal handler or another thread.
        """
        if self._drain_started is None:
            self._drain_started = time.monotonic()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)

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
            closer = getattr(self.runtime.llm, "close", None)
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
