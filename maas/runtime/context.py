"""What background work gets: a typed context, not a dict."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from maas.llm.embed import Embedder
from maas.llm.offline import OfflineModel
from maas.llm.types import CallLog, LanguageModel, Recorder
from maas.params import ParamSource
from maas.runtime.metrics import Metrics
from maas.runtime.signals import Signals
from maas.settings import Settings

if TYPE_CHECKING:
    from maas.pipeline.express import ExpressLane


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Runtime:
    settings: Settings
    pool: Any  # asyncpg.Pool
    llm: LanguageModel
    embedder: Embedder | None
    params: ParamSource
    signals: Signals
    worker_id: str = field(default_factory=new_worker_id)
    metrics: Metrics = field(default_factory=Metrics)
    # Set when the process starts shutting down: workers stop claiming, waiters answer early.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Seconds of the shutdown grace period left (the whole period until shutdown begins).
    grace_left: Callable[[], float] | None = None
    _offline: LanguageModel | None = None
    # Requests that wait for their answer drive their own run (set by the service).
    express: ExpressLane | None = None
    # The assembler's searches: sessions with generic plans (maas.db.pool.GENERIC_PLANS).
    search_pool: Any = None

    def grace_s(self) -> float:
        return self.grace_left() if self.grace_left else self.settings.shutdown_grace_s

    def model_for(self, mode: str | None) -> LanguageModel:
        """The model of a run's recorded mode: a run pinned to offline (a mock test run's) never
        reaches the configured LLM."""
        if mode != "offline" or self.llm.mode == "offline":
            return self.llm
        if self._offline is None:
            self._offline = OfflineModel(self.settings.token_encoding)
        return self._offline

    def embedder_for(self, mode: str | None) -> Embedder | None:
        """A run pinned to offline on a service with an LLM reaches no network: a remote
        embedder is skipped for it (a local one still runs)."""
        pinned = mode == "offline" and self.llm.mode != "offline"
        if pinned and self.embedder is not None and not self.embedder.name.startswith("local:"):
            return None
        return self.embedder

    def recorder(self, user_id: Any, run_id: Any = None, job_id: int | None = None) -> Recorder:
        """Log every inference (LLM or offline) in maas.llm_calls."""
        from maas.db.queries import q

        async def record(call: CallLog) -> None:
            await self.pool.execute(
                q("insert_llm_call"),
                run_id,
                job_id,
                user_id,
                call.stage,
                call.model,
                call.prompt_tokens,
                call.completion_tokens,
                call.ms,
                call.outcome,
                call.error,
            )
            self.metrics.observe_call(call)

        return record
