"""One dedicated LISTEN connection per process, with reconnect and a self-NOTIFY probe.

(The pool cannot hold a LISTEN: asyncpg runs UNLISTEN * when a connection is released.)
Callbacks only parse the payload and set events; the rows stay the truth.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from maas.db.pool import close_quietly, connect
from maas.runtime.loops import reconnecting, wait_any
from maas.runtime.signals import Signals

log = logging.getLogger(__name__)
RUNS, ARCHIVE, PROBE = "maas_runs", "maas_archive", "maas_probe"
APPLICATION_NAME = "maas-listener"  # how operators (and tests) find it in pg_stat_activity


@dataclass
class ListenerHealth:
    connected: bool = False
    reconnects: int = 0
    last_probe_ok: float | None = None
    last_error: str | None = None
    since: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        age = None if self.last_probe_ok is None else round(time.time() - self.last_probe_ok, 1)
        return {
            "connected": self.connected,
            "reconnects": self.reconnects,
            "last_probe_age_s": age,
            "last_error": self.last_error,
        }


class Listener:
    def __init__(self, dsn: str, signals: Signals, pool: Any, probe_s: float) -> None:
        self.dsn = dsn
        self.signals = signals
        self.pool = pool
        self.probe_s = probe_s
        self.health = ListenerHealth()
        self._lost = asyncio.Event()
        self._probe_token = ""
        self._probe_seen = asyncio.Event()
        self.ready = asyncio.Event()  # set once the first LISTEN is in place

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Reconnect with backoff 0.2 s doubling to 5 s; every (re)connect wakes every waiter."""

        async def serve(conn: Any) -> None:
            await self._serve(stop)

        await reconnecting(self._connect, serve, self._close, stop, "listener", self._failed)

    def _failed(self, error: str) -> None:
        self.health.last_error = error

    async def _connect(self) -> Any:
        self._lost.clear()
        conn = await connect(self.dsn, application_name=APPLICATION_NAME)
        try:
            conn.add_termination_listener(lambda _c: self._lost.set())
            for channel in (RUNS, ARCHIVE, PROBE):
                await conn.add_listener(channel, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        if self.health.connected or self.health.reconnects or self.health.last_error:
            self.health.reconnects += 1
        self.health.connected = True
        self.ready.set()
        self.signals.wake_all()  # anything sent while we were away is found by the runners
        return conn

    async def _serve(self, stop: asyncio.Event) -> None:
        while not stop.is_set() and not self._lost.is_set():
            if not await self._probe():
                raise ConnectionError("probe NOTIFY not received")
            await wait_any(self.probe_s, stop, self._lost)
        if self._lost.is_set():
            raise ConnectionError("listener connection terminated")

    async def _probe(self) -> bool:
        """NOTIFY ourselves through the pool; the listener must hear it."""
        self._probe_token = uuid.uuid4().hex
        self._probe_seen.clear()
        await self.pool.execute("SELECT pg_notify($1, $2)", PROBE, self._probe_token)
        await wait_any(5.0, self._probe_seen, self._lost)
        if self._probe_seen.is_set():
            self.health.last_probe_ok = time.time()
            return True
        return False

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        if channel == PROBE:
            if payload == self._probe_token:
                self._probe_seen.set()
            return
        status, _, ident = payload.partition(":")
        if channel == RUNS:
            self.signals.on_run(status, ident)
        elif channel == ARCHIVE and status == "queued":
            self.signals.on_archive()

    async def _close(self, conn: Any) -> None:
        self.health.connected = False
        await close_quietly(conn)
