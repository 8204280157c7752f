"""In-process wake-ups: one event per stage, and per-run waiters for the API and SSE."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from maas.pipeline.status import QUEUED

STAGES = ("analyzer", "assembler", "responder", "archivist")


class Signals:
    def __init__(self) -> None:
        self.stage = {name: asyncio.Event() for name in STAGES}
        self._runs: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.probe = asyncio.Event()

    def on_run(self, status: str, run_id: str) -> None:
        stage = QUEUED.get(status)
        if stage:
            self.stage[stage].set()
        for event in self._runs.get(run_id, ()):
            event.set()

    def on_archive(self) -> None:
        self.stage["archivist"].set()

    def wake_all(self) -> None:
        """After a reconnect notifications may have been lost: let every loop look again."""
        for event in self.stage.values():
            event.set()
        for events in self._runs.values():
            for event in events:
                event.set()

    @asynccontextmanager
    async def watch(self, run_id: str) -> AsyncIterator[asyncio.Event]:
        event = asyncio.Event()
        self._runs[run_id].add(event)
        try:
            yield event
        finally:
            self._runs[run_id].discard(event)
            if not self._runs[run_id]:
                del self._runs[run_id]


async def wait_any(timeout: float, *events: asyncio.Event) -> None:
    """Return when any event is set or the timeout passes."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
