"""The two shapes of a long-lived loop, written once: a job run every period until stop, and a
session kept open with reconnect and backoff until stop. Every background loop of MaaS and its
extensions is one of these, run as a named supervised task (maas/runtime/supervisor.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[object]]
S = TypeVar("S")  # a session: a connection, say


async def wait_any(timeout: float, *events: asyncio.Event) -> None:
    """Return when any event is set or the timeout passes."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def every(
    period_s: float, job: Job, stop: asyncio.Event, name: str, wait_first: bool = False
) -> None:
    """Run `job` now (or after one period, `wait_first`) and then every `period_s` until `stop`.

    A failure is logged and the job runs again next period: the database may be briefly away,
    and a periodic job must outlive that."""
    if wait_first:
        await wait_any(period_s, stop)
    while not stop.is_set():
        try:
            await job()
        except Exception as exc:  # noqa: BLE001 (task boundary: log, try again next period)
            log.warning("%s failed: %s: %s", name, type(exc).__name__, exc)
        await wait_any(period_s, stop)


async def reconnecting(
    connect: Callable[[], Awaitable[S]],
    serve: Callable[[S], Awaitable[None]],
    close: Callable[[S], Awaitable[None]],
    stop: asyncio.Event,
    name: str,
    on_error: Callable[[str], None] = lambda _error: None,
    delays: tuple[float, float] = (0.2, 5.0),
) -> None:
    """Keep a connection served until `stop`: connect, serve until it is lost (serve returns or
    raises), close, wait, connect again. The wait starts at delays[0] after a connection that
    worked and doubles with each failed attempt up to delays[1]; `on_error` gets each failure's
    description."""
    first, most = delays
    delay = first
    while not stop.is_set():
        session: S | None = None
        try:
            session = await connect()
            delay = first
            await serve(session)
        except Exception as exc:  # noqa: BLE001 (task boundary: record, back off, reconnect)
            error = f"{type(exc).__name__}: {exc}"
            on_error(error)
            log.warning("%s: %s; reconnecting in %.1fs", name, error, delay)
        finally:
            if session is not None:
                await close(session)
        if not stop.is_set():
            await wait_any(delay, stop)
            delay = min(delay * 2, most)
