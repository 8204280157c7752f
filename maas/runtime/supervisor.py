"""Named, supervised background tasks: a crashed loop is logged and restarted with backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        self.tasks[name] = asyncio.create_task(self._supervise(name, factory), name=name)

    async def _supervise(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        delay = 0.5
        while not self.stop.is_set():
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # task boundary
                log.exception("task %s crashed; restarting in %.1fs", name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def shutdown(self, grace_s: float) -> None:
        """Ask every loop to stop, wait up to grace_s, then cancel what is left."""
        self.stop.set()
        pending = [t for t in self.tasks.values() if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace_s)
            for task in late:
                log.warning(
                    "task %s did not stop within %.1fs; cancelling", task.get_name(), grace_s
                )
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5.0)
