"""The pipeline's background jobs (the periodic ones run by the composition root with
maas.runtime.loops.every): crash recovery, idle archiving, retention, and once per start the
line counts a migration forgot."""

from __future__ import annotations

import asyncio
import logging

from maas.memory import store
from maas.pipeline.repo import RunRepository
from maas.runtime.context import Runtime

log = logging.getLogger(__name__)


async def requeue(rt: Runtime, repo: RunRepository) -> None:
    """Leases that ran out (a crashed or paused worker): back to their queue, and every loop looks
    again (their notifications may never come); failed archive jobs whose retry time came."""
    s = rt.settings
    runs, jobs = await repo.requeue_stale(s.max_attempts, s.archive_retry_s)
    if runs or jobs:
        log.warning("requeued %d stale runs and %d archive jobs", runs, jobs)
        rt.signals.wake_all()
    if revived := await repo.revive_failed_jobs():
        log.warning("queued %d failed archive jobs again", revived)
        rt.signals.on_archive()


async def queue_idle(rt: Runtime, repo: RunRepository) -> None:
    """Open threads idle for archivist.idle_s get an archive job."""
    params = await rt.params.active()
    if await repo.queue_idle_threads(params.num("archivist.idle_s")):
        rt.signals.on_archive()


async def cleanup(rt: Runtime, repo: RunRepository) -> None:
    await repo.prune(rt.settings.retention_days)


async def line_tokens(rt: Runtime, stop: asyncio.Event) -> None:
    """Memories with no stored line count (migrated across 0041) get one, once per start."""
    if stored := await store.backfill_line_tokens(rt.pool, stop):
        log.info("stored the packed line counts of %d memories", stored)
