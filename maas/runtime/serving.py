"""uvicorn with a graceful drain: SIGTERM stops claiming at once, in-flight work gets one grace."""

from __future__ import annotations

from types import FrameType
from typing import Any

import uvicorn

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


def serve(app: Any, settings: Settings) -> None:
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=max(int(settings.shutdown_grace_s), 1),
    )
    DrainingServer(config, app.state.service).run()
