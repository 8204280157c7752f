"""What an extension gets from MaaS: the extension host.

Extensions (the web UI, self-learning, the built-in test runs) register under the entry point
group `maas.extensions` as `extend(host: ExtensionHost) -> None`. Through the host they add
routes and supervised tasks, may replace the parameter source, and, once the service has started,
reach its pool, its database and the run notifications of its one listener. They never import
the composition root (maas.service): the host is all they see of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI

from maas.params import ParamSet, ParamSource
from maas.runtime.signals import RunSubscriber, Signals
from maas.settings import Settings

Task = Callable[[asyncio.Event], Awaitable[None]]  # gets the stop event; runs until it is set


@dataclass(frozen=True)
class Started:
    """What exists once the service has started."""

    pool: Any  # asyncpg.Pool: MaaS's own; an extension borrows a connection briefly
    dsn: str
    admin_key: str | None
    params: ParamSource
    worker_id: str  # this process, as its claims and heartbeats name it
    embedder: str = "none"  # what embeds memories and queries (its name, as /health shows it)


class ExtensionHost:
    def __init__(
        self, app: FastAPI, settings: Settings, signals: Signals, grace_left: Callable[[], float]
    ) -> None:
        self.app = app
        self.settings = settings
        self.grace_left = grace_left  # seconds of the shutdown grace period left
        self.tasks: list[tuple[str, Task]] = []
        self.health_parts: dict[str, Callable[[], dict[str, Any]]] = {}
        self.param_source: ParamSource | None = None  # None: built-in defaults + MAAS_PARAMS
        self._signals = signals
        self._started: Started | None = None

    # ---- before start: what the extension adds

    def add_router(self, router: APIRouter) -> None:
        self.app.include_router(router)

    def add_task(self, name: str, job: Task) -> None:
        """A background job, supervised (restarted with backoff if it crashes) until shutdown."""
        self.tasks.append((name, job))

    def add_health(self, name: str, part: Callable[[], dict[str, Any]]) -> None:
        """A section of GET /health (it must answer at once and not raise)."""
        self.health_parts[name] = part

    def set_param_source(self, source: ParamSource) -> None:
        """Runs take their parameters from `source` (self-learning's Tuner)."""
        self.param_source = source

    def subscribe_runs(self, subscriber: RunSubscriber) -> None:
        """Hear every run notification of the process's one listener (no LISTEN of your own)."""
        self._signals.subscribe(subscriber)

    # ---- once started

    def started(self, started: Started) -> None:
        """Called by the composition root when the service is up."""
        self._started = started

    def _live(self) -> Started:
        if self._started is None:
            raise RuntimeError("the service has not started")
        return self._started

    @property
    def pool(self) -> Any:
        return self._live().pool

    @property
    def dsn(self) -> str:
        return self._live().dsn

    @property
    def admin_key(self) -> str | None:
        return self._live().admin_key

    @property
    def worker_id(self) -> str:
        return self._live().worker_id

    @property
    def embedder(self) -> str:
        return self._live().embedder

    async def active_params(self, thread_id: Any = None, user_id: Any = None) -> ParamSet:
        """The parameters a new run of `thread_id` (and user) would get now."""
        return await self._live().params.active(thread_id, user_id)
