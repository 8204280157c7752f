"""Lost wake-ups: a ring wakes exactly one idle worker, and a ring that comes while a worker is
looking for work is not lost (it enrolled before looking)."""

from __future__ import annotations

import asyncio

from maas.pipeline.status import QUEUED
from maas.runtime.signals import Doorbell, Signals


async def test_a_ring_wakes_one_idle_worker_longest_idle_first() -> None:
    bell = Doorbell()
    first, second = asyncio.Event(), asyncio.Event()
    bell.enroll(first)
    bell.enroll(second)
    bell.ring()
    assert first.is_set() and not second.is_set()
    bell.ring()
    assert second.is_set()
    bell.ring()  # nobody idle: every worker is busy and will look again when done
    third = asyncio.Event()
    bell.enroll(third)
    assert not third.is_set()


async def test_a_ring_while_looking_is_kept_until_the_worker_waits() -> None:
    bell = Doorbell()
    mine = asyncio.Event()
    bell.enroll(mine)  # enrolled, now looking for work (found nothing)...
    bell.ring()  # ...while a new run arrives
    await asyncio.wait_for(mine.wait(), 0.1)  # so the wait returns at once: it looks again


async def test_reconnect_wakes_every_idle_worker_and_unblocked_runs_ring_the_analyzer() -> None:
    signals = Signals(QUEUED)
    workers = [asyncio.Event() for _ in range(3)]
    for event in workers:
        signals.stage["responder"].enroll(event)
    signals.wake_all()
    assert all(e.is_set() for e in workers)
    analyzer = asyncio.Event()
    signals.stage["analyzer"].enroll(analyzer)
    signals.on_run("COMPLETED", "some-run")  # an end alone: nobody waits for it
    assert not analyzer.is_set()
    signals.on_run("UNBLOCKED", "next-run")  # the next message of its thread may go now
    assert analyzer.is_set()
