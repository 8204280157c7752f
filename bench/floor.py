"""The physical floor under a run's hand-offs: a bare NOTIFY -> LISTEN round trip and a bare
SELECT 1 on asyncpg connections of the benchmark's database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bench.stats import percentile
from maas.db.pool import connect

FLOOR_ROUNDS = 200
FLOOR_CHANNEL = "maas_bench_floor"


async def _median_rtt(rounds: int, once: Callable[[], Coroutine[Any, Any, float]]) -> float:
    for _ in range(10):  # warm-up
        await once()
    return percentile([await once() for _ in range(rounds)], 50)


async def notify_floor(dsn: str, rounds: int = FLOOR_ROUNDS) -> dict[str, float]:
    """Median NOTIFY -> listener round trip (and plain SELECT 1) on a bare asyncpg connection."""
    listener, sender = await connect(dsn), await connect(dsn)
    arrived: asyncio.Queue[float] = asyncio.Queue()

    def on_notify(_c: Any, _pid: int, _channel: str, _payload: str) -> None:
        arrived.put_nowait(time.perf_counter())

    async def notify_once() -> float:
        t0 = time.perf_counter()
        await sender.execute("SELECT pg_notify($1, 'x')", FLOOR_CHANNEL)
        return (await asyncio.wait_for(arrived.get(), 5.0) - t0) * 1000

    async def select_once() -> float:
        t0 = time.perf_counter()
        await sender.fetchval("SELECT 1")
        return (time.perf_counter() - t0) * 1000

    try:
        await listener.add_listener(FLOOR_CHANNEL, on_notify)
        notify = await _median_rtt(rounds, notify_once)
        select = await _median_rtt(rounds, select_once)
        return {"notify_rtt_ms": notify, "select_rtt_ms": select}
    finally:
        await listener.close()
        await sender.close()
