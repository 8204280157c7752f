"""The Sensor: one row in selflearn.sensor_events per finished MaaS run. It analyses nothing.

It runs as a supervised task of the MaaS process (ExtensionHost.add_task) on its own database
connection, so it never takes a connection from MaaS's pool and its failures never reach a
request: they are logged, and the loop reconnects with backoff. MaaS does not know about it.

The rows are the truth and NOTIFY only wakes: it hears the run notifications of the process's
one listener (ExtensionHost.subscribe_runs: "<status>:<run id>" on `maas_runs`) for the ids of runs
that may have finished, and a sweep at start-up, every `poll_s` and after the listener reconnects
records every finished run it has not recorded yet (backfill after downtime, lost notifications).
The primary key on run_id makes every capture idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maas.db.pool import GENERIC_PLANS, close_quietly, connect
from maas.runtime.loops import reconnecting, wait_any
from selflearn.queries import q

log = logging.getLogger(__name__)
APPLICATION_NAME = "selflearn-sensor"
_DONE = frozenset({"COMPLETED", "FAILED", "READY"})  # READY ends a /v1/context run


@dataclass
class SensorHealth:
    connected: bool = False
    recorded: int = 0
    last_error: str | None = None
    last_sweep: float | None = None


@dataclass
class Sensor:
    dsn: Callable[[], str]  # read at connect time: the service resolves it when it starts
    poll_s: float = 5.0
    batch: int = 500
    # After a ring, gather the rings of this long into one capture: each capture plans the
    # finished_runs view (~1 ms), and a chat rings twice (READY, COMPLETED).
    gather_s: float = 0.05
    health: SensorHealth = field(default_factory=SensorHealth)
    _pending: set[uuid.UUID] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _lost: asyncio.Event = field(default_factory=asyncio.Event)  # our connection is gone
    _sweep_due: bool = False  # the listener reconnected: notifications may have been lost

    async def run_forever(self, stop: asyncio.Event) -> None:
        async def serve(conn: Any) -> None:
            self.health.connected = True
            await self.sweep(conn)  # backfill: everything that finished while we were away
            await self._serve(conn, stop)

        await reconnecting(
            self._connect, serve, self._close, stop, "sensor", self._failed, (0.5, 30.0)
        )

    def _failed(self, error: str) -> None:
        self.health.last_error = error

    async def _connect(self) -> Any:
        # Its few statements planned once: Postgres kept re-planning the capture (the
        # finished_runs view, 0.7 ms) although the generic plan is as good (lookups per run id).
        conn = await connect(self.dsn(), application_name=APPLICATION_NAME, settings=GENERIC_PLANS)
        self._lost.clear()
        conn.add_termination_listener(lambda _c: self._lost.set())
        return conn

    async def _close(self, conn: Any) -> None:
        self.health.connected = False
        await close_quietly(conn)

    async def _serve(self, conn: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await wait_any(self.poll_s, self._wake, stop, self._lost)
            if self._lost.is_set():
                raise ConnectionError("sensor connection lost")
            if self._pending:
                await wait_any(self.gather_s, stop, self._lost)
            self._wake.clear()  # before taking the ids, so no ring is lost meanwhile
            await self.capture(conn, self._take())
            if self._sweep_due or time.monotonic() - (self.health.last_sweep or 0.0) >= self.poll_s:
                await self.sweep(conn)

    # ---- the process's listener rings here (maas.host.ExtensionHost.subscribe_runs)

    def on_run(self, status: str, run_id: str) -> None:
        if status in _DONE:
            try:
                self._pending.add(uuid.UUID(run_id))
            except ValueError:
                return
            self._wake.set()

    def on_lost(self) -> None:
        self._sweep_due = True
        self._wake.set()

    def _take(self) -> list[uuid.UUID]:
        ids, self._pending = list(self._pending), set()
        return ids

    async def capture(self, conn: Any, run_ids: list[uuid.UUID]) -> int:
        """Record the named runs that are finished (the others arrive with a later ring)."""
        if not run_ids:
            return 0
        rows = await conn.fetch(q("sensor_capture_ids"), run_ids)
        self.health.recorded += len(rows)
        return len(rows)

    async def sweep(self, conn: Any) -> int:
        """Record every finished run not recorded yet, in batches, oldest first."""
        total = 0
        self._sweep_due = False  # before reading: a loss reported meanwhile sweeps again
        while True:
            rows = await conn.fetch(q("sensor_capture_missed"), self.batch)
            total += len(rows)
            if len(rows) < self.batch:
                break
        self.health.recorded += total
        self.health.last_sweep = time.monotonic()
        if total:
            log.info("sensor: recorded %d run(s) found by the sweep", total)
        return total


async def stats(conn: Any) -> dict[str, Any]:
    row = await conn.fetchrow(q("sensor_stats"))
    return {
        "maas_finished_runs": int(row["maas_finished_runs"]),
        "sensor_events": int(row["sensor_events"]),
        "lag_s": round(float(row["lag_s"]), 3),
    }
