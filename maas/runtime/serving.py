"""uvicorn with a graceful drain: SIGTERM stops claiming at once, in-flight work gets one grace."""

from __future__ import annotations

import gc
import socket
from types import FrameType
from typing import Any

import uvicorn

from maas.llm.tokens import encoding
from maas.settings import Settings


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT the workers stop claiming immediately, so in-flight runs finish or
    release their lease within one grace period, counted from the signal (not after uvicorn's
    own wait for open connections)."""

    def __init__(self, config: uvicorn.Config, service: Any) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.service.begin_drain()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        settle_heap(self.service.settings.token_encoding)


def settle_heap(token_encoding: str) -> None:
    """Once the service is up (the token encoding loaded, Service.start), move everything alive
    to the garbage collector's permanent generation. A full collection walked every object of
    the ~200 MB process (imports, FastAPI's models, the encoding's ranks): 90–125 ms, latency
    spikes in requests at 10k memories. Frozen, the same collections take ~0.5 ms
    (docs/performance.md, session 6). No collection first: it took 0.15 s of the cold start
    and found 10 unreachable objects, which stay frozen."""
    encoding(token_encoding)  # loaded already when the service started: a cache hit
    gc.freeze()


def serve(app: Any, settings: Settings) -> None:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=max(int(settings.shutdown_grace_s), 1),
    )
    DrainingServer(config, app.state.service).run()
