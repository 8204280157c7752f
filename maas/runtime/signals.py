"""In-process wake-ups: one event per stage, and per-run waiters for the API and SSE."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Protocol

# Not a status: a waiting run of a thread whose earlier run just ended can be claimed now.
UNBLOCKED = "UNBLOCKED"
ARCHIVIST = "archivist"  # the archive jobs' doorbell (channel maas_archive)


class Doorbell:
    """Wakes one idle worker of a stage per ring, not all of them.

    A worker enrolls (a cleared event of its own) *before* it looks for work, so a ring that
    comes while it is looking is not lost: it will look once more. A ring with nobody enrolled
    is dropped: every worker is then busy and looks again as soon as it is done.
    """

    def __init__(self) -> None:
        self._idle: dict[asyncio.Event, None] = {}  # insertion-ordered: the longest idle first

    def enroll(self, event: asyncio.Event) -> None:
        event.clear()
        self._idle[event] = None

    def leave(self, event: asyncio.Event) -> None:
        self._idle.pop(event, None)

    def ring(self) -> None:
        if self._idle:
            event = next(iter(self._idle))
            del self._idle[event]
            event.set()

    def ring_all(self) -> None:
        idle, self._idle = self._idle, {}
        for event in idle:
            event.set()


class RunSubscriber(Protocol):
    """Hears the process's run notifications (an extension's, e.g. self-learning's sensor)."""

    def on_run(self, status: str, run_id: str) -> None:
        """A run notification ("<status>:<run id>" on maas_runs); only parse and wake here."""

    def on_lost(self) -> None:
        """The listener (re)connected: notifications sent meanwhile may have been lost."""


class Signals:
    """`queued`: the stage that claims a run at each queue status (the pipeline's stage table,
    handed in by the composition root: the runtime knows no stages of its own)."""

    def __init__(self, queued: Mapping[str, str]) -> None:
        self._queued = dict(queued)
        self._first = self._queued["NEW"]  # where a run unblocked by its thread's order waits
        self.stage = {name: Doorbell() for name in (*self._queued.values(), ARCHIVIST)}
        # Per run: each waiter's event and the statuses that wake it (None = every status).
        self._runs: dict[str, dict[asyncio.Event, Collection[str] | None]] = defaultdict(dict)
        self._subscribers: list[RunSubscriber] = []
        # Runs this process drives itself (express lane) -> until when their queue statuses
        # ring no worker: the driver claimed the next stage in the same commit, so a woken
        # worker would only find nothing to claim. An entry expires by itself.
        self._driven: dict[str, float] = {}

    def driving(self, run_id: str, for_s: float) -> None:
        self._driven[run_id] = time.monotonic() + for_s

    def driven_until(self, run_id: str, for_s: float) -> None:
        """The driver is done (or gave up): ring again for this run after `for_s` seconds, once
        the notifications of its last commit have come in."""
        if for_s <= 0:
            self._driven.pop(run_id, None)
        else:
            self._driven[run_id] = time.monotonic() + for_s

    def _is_driven(self, run_id: str) -> bool:
        until = self._driven.get(run_id)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._driven[run_id]
        return False

    def subscribe(self, subscriber: RunSubscriber) -> None:
        self._subscribers.append(subscriber)

    def on_run(self, status: str, run_id: str) -> None:
        for subscriber in self._subscribers:
            subscriber.on_run(status, run_id)
        if status == UNBLOCKED:  # the run before it in its thread ended (notify_run_status)
            self.stage[self._first].ring()
            return
        stage = self._queued.get(status)
        if stage and not self._is_driven(run_id):
            self.stage[stage].ring()
        for event, statuses in self._runs.get(run_id, {}).items():
            if statuses is None or status in statuses:
                event.set()

    def on_archive(self) -> None:
        self.stage[ARCHIVIST].ring()

    def wake_all(self) -> None:
        """After a reconnect notifications may have been lost: let every loop look again."""
        for bell in self.stage.values():
            bell.ring_all()
        for events in self._runs.values():
            for event in events:
                event.set()
        for subscriber in self._subscribers:
            subscriber.on_lost()

    @asynccontextmanager
    async def watch(
        self, run_id: str, statuses: Collection[str] | None = None
    ) -> AsyncIterator[asyncio.Event]:
        """An event set by the run's notifications: all of them, or only those whose status is
        in `statuses` (a waiter for the end skips waking for each stage in between). A reconnect
        (wake_all) sets it whatever the status, since notifications may have been lost."""
        event = asyncio.Event()
        self._runs[run_id][event] = statuses
        try:
            yield event
        finally:
            self._runs[run_id].pop(event, None)
            if not self._runs[run_id]:
                del self._runs[run_id]
