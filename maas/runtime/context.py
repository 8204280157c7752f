"""The typed contexts background work gets (not a dict): the models the agents use, and what the
pipeline's loops and lanes share."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maas.llm.embed import Embedder
from maas.llm.offline import OfflineModel
from maas.llm.types import LanguageModel
from maas.params import ParamSource
from maas.runtime.fair import FairShare
from maas.runtime.metrics import Metrics
from maas.runtime.signals import Signals
from maas.runtime.streams import AnswerStreams
from maas.settings import Settings


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Models:
    """The language model and the embedder the agents are given, per run."""

    llm: LanguageModel
    embedder: Embedder | None
    token_encoding: str
    _offline: LanguageModel | None = None

    @property
    def mode(self) -> str:
        return self.llm.mode

    def model_for(self, mode: str | None) -> LanguageModel:
        """The model of a run's recorded mode: a run pinned to offline (a mock test run's) never
        reaches the configured LLM."""
        if mode != "offline" or self.llm.mode == "offline":
            return self.llm
        if self._offline is None:
            self._offline = OfflineModel(self.token_encoding)
        return self._offline

    def embedder_for(self, mode: str | None) -> Embedder | None:
        """A run pinned to offline on a service with an LLM reaches no network: a remote
        embedder is skipped for it (a local one still runs)."""
        pinned = mode == "offline" and self.llm.mode != "offline"
        if pinned and self.embedder is not None and not self.embedder.name.startswith("local:"):
            return None
        return self.embedder


@dataclass
class Runtime:
    """What the stage workers, the express lane and the API's waits share."""

    settings: Settings
    pool: Any  # asyncpg.Pool
    models: Models
    params: ParamSource
    signals: Signals
    search_pool: Any  # the assembler's searches: sessions with generic plans (GENERIC_PLANS)
    worker_id: str = field(default_factory=new_worker_id)
    metrics: Metrics = field(default_factory=Metrics)
    answer_streams: AnswerStreams = field(default_factory=AnswerStreams)
    # Set when the process starts shutting down: workers stop claiming, waiters answer early.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Seconds of the shutdown grace period left (the whole period until shutdown begins).
    grace_left: Callable[[], float] | None = None
    # The CPU of building contexts (offline analyses, searches): settings.context_slots at once,
    # shared fairly by tenant.
    context_share: FairShare = field(init=False)

    def __post_init__(self) -> None:
        self.context_share = FairShare(self.settings.context_slots)

    def grace_s(self) -> float:
        return self.grace_left() if self.grace_left else self.settings.shutdown_grace_s
