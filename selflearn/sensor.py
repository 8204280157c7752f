"""The Sensor: one row in selflearn.sensor_events per finished MaaS run. It analyses nothing.

It runs as a supervised task of the MaaS process (Service.add_task) on its own database
connection, so it never takes a connection from MaaS's pool and its failures never reach a
request: they are logged, and the loop reconnects with backoff. MaaS does not know about it.

The rows are the truth and NOTIFY only wakes: it LISTENs on MaaS's own `maas_runs` channel
(payload "<status>:<run id>") for the ids of runs that may have finished, and a sweep at start-up
and every `poll_s` records every finished run it has not recorded yet (backfill after downtime,
lost notifications). The primary key on run_id makes every capture idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maas.db.pool import GENERIC_PLANS, connect
from maas.runtime.signals import wait_any
from selflearn.queries import q

log = logging.getLogger(__name__)
CHANNEL = "maas_runs"  # MaaS's run doorbell; the sensor only listens
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

    async def run_forever(self, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                await self._session(stop)
                delay = 0.5
            except Exception as exc:  # task boundary: MaaS keeps serving whatever happens here
                self.health.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("sensor: %s; retrying in %.1fs", self.health.last_error, delay)
            self.health.connected = False
            if not stop.is_set():
                await wait_any(delay, stop)
                delay = min(delay * 2, 30.0)

    async def _session(self, stop: asyncio.Event) -> None:
        # Its few statements planned once: Postgres kept re-planning the capture (the
        # finished_runs view, 0.7 ms) although the generic plan is as good (lookups per run id).
        conn = await connect(self.dsn(), application_name=APPLICATION_NAME, settings=GENERIC_PLANS)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(CHANNEL, self._on_notify)
            self.health.connected = True
            await self.sweep(conn)  # backfill: everything that finished while we were away
            await self._serve(conn, stop, lost)
        finally:
            await _close(conn)

    async def _serve(self, conn: Any, stop: asyncio.Event, lost: asyncio.Event) -> None:
        while not stop.is_set():
            await wait_any(self.poll_s, self._wake, stop, lost)
            if lost.is_set():
                raise ConnectionError("sensor connection lost")
            if self._pending:
                await wait_any(self.gather_s, stop, lost)
            self._wake.clear()  # before taking the ids, so no ring is lost meanwhile
            await self.capture(conn, self._take())
            if time.monotonic() - (self.health.last_sweep or 0.0) >= self.poll_s:
                await self.sweep(conn)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        status, _, ident = payload.partition(":")
        if status in _DONE:
            try:
                self._pending.add(uuid.UUID(ident))
            except ValueError:
                return
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


async def _close(conn: Any) -> None:
    if conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), 2.0)
    except Exception:  # a dead socket: terminate instead
        conn.terminate()


async def stats(conn: Any) -> dict[str, Any]:
    row = await conn.fetchrow(q("sensor_stats"))
    return {
        "maas_finished_runs": int(row["maas_finished_runs"]),
        "sensor_events": int(row["sensor_events"]),
        "lag_s": round(float(row["lag_s"]), 3),
    }
