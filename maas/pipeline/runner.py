"""Stage runners: clear the wake-up, claim under a lease, do the work, commit with a guard.

The row is the truth and NOTIFY only wakes: a runner drains its queue, then waits for a wake-up,
a stop or the poll interval, whichever comes first. Every read and write of a run or an archive
job goes through the repository (repo.py); the work is the stage's (stages.py) or the
archivist's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import Any, Generic, TypeVar

from maas.errors import MaasError, StageError
from maas.pipeline.calls import StageCalls, job_recorder
from maas.pipeline.claim import Claim, Job, Next
from maas.pipeline.repo import Committed, LostLease, RunRepository
from maas.pipeline.stages import STEPS, SliceArchived, StageSteps, archive
from maas.pipeline.status import NEXT_STAGE, STAGES
from maas.runtime.context import Runtime
from maas.runtime.loops import wait_any
from maas.runtime.signals import ARCHIVIST, Doorbell

log = logging.getLogger(__name__)
T = TypeVar("T")  # what a claim hands the work: a run or an archive job
R = TypeVar("R")  # what the work hands its commit
V = TypeVar("V")


def backoff_s(rt: Runtime, attempts: int) -> float:
    base = rt.settings.backoff_base_s * 2.0 ** max(attempts - 1, 0)
    jitter: float = random.uniform(0.8, 1.2)  # noqa: S311 (not for security)
    return min(base, rt.settings.backoff_max_s) * jitter


class Worker(ABC, Generic[T, R]):
    """One claim loop. Subclasses say how to claim, work, commit, retry and release."""

    name: str

    def __init__(self, rt: Runtime, repo: RunRepository, stop: asyncio.Event) -> None:
        self.rt = rt
        self.repo = repo
        self.stop = stop
        self.current: T | None = None

    @property
    def doorbell(self) -> Doorbell:
        return self.rt.signals.stage[self.name]

    async def run_forever(self) -> None:
        wakeup = asyncio.Event()
        while not self.stop.is_set():
            self.doorbell.enroll(wakeup)  # before looking, so no ring is lost meanwhile
            try:
                while not self.stop.is_set() and await self.run_once():
                    pass
            except Exception:  # the database may be down: log, wait, try again
                log.exception("%s loop error", self.name)
            await wait_any(self.rt.settings.poll_s, wakeup, self.stop)
            self.doorbell.leave(wakeup)

    async def run_once(self) -> bool:
        item = await self.claim()
        if item is None:
            return False
        self.current = item
        try:
            await self.process(item)
        finally:
            self.current = None
        return True

    async def process(self, item: T) -> Committed | None:
        """Work, then commit; what the commit did, or None when the attempt did not commit (it
        failed and is retried or FAILED, its lease was lost, or it was released)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.rt.settings.stage_deadline_s + 5):
                result = await self._holding_lease(item)
            worked = time.perf_counter()
            committed = await self.commit(result, item)
            self._observe(started, worked, time.perf_counter())
            return committed
        except LostLease:
            log.warning("%s: lease lost for %s; another worker owns it", self.name, _ident(item))
        except asyncio.CancelledError:
            await asyncio.shield(self.release(item))
            raise
        except Exception as exc:  # noqa: BLE001
            # task boundary: every failure is recorded on the row
            await self.fail(item, _describe(exc), _permanent(exc))
        return None

    def _observe(self, started: float, worked: float, done: float) -> None:
        self.rt.metrics.stage_seconds.labels(self.name).observe(done - started)
        self.rt.metrics.stage_commit_seconds.labels(self.name).observe(done - worked)

    async def _holding_lease(self, item: T) -> R:
        """Run the work while renewing the lease every L/3; a lost lease cancels the work.

        A live worker keeps its claim however long a stage takes; a dead or paused one stops
        renewing, so after L the requeue hands the run to someone else.
        """
        return await self._renewing(self.work(item), item)

    async def _renewing(self, work: Awaitable[V], item: T) -> V:
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.rt.settings.lease_s / 3)
                if done:
                    return task.result()
                if not await self._renew(item):
                    raise LostLease()
        finally:
            task.cancel()

    async def _renew(self, item: T) -> bool:
        try:
            return await self.renew(item)
        except Exception as exc:  # noqa: BLE001
            # the database may be away: the commit guard decides later
            log.warning("%s: could not renew lease of %s: %s", self.name, _ident(item), exc)
            return True

    @abstractmethod
    async def claim(self) -> T | None: ...

    @abstractmethod
    async def work(self, item: T) -> R: ...

    @abstractmethod
    async def commit(self, result: R, item: T) -> Committed:
        """Apply the work's effects under the guard (LostLease when it does not hold)."""

    @abstractmethod
    async def renew(self, item: T) -> bool: ...

    @abstractmethod
    async def fail(self, item: T, error: str, permanent: bool = False) -> None: ...

    @abstractmethod
    async def release(self, item: T) -> None: ...

    def _count_failure(self, final: bool) -> None:
        self.rt.metrics.stage_failures.labels(self.name, "failed" if final else "retry").inc()


class StageWorker(Worker[Claim, Any]):
    """A stage's claim loop; with `chained`, each commit also claims the run's next stage (the
    express lane drives one run through every stage with it, see maas/pipeline/express.py)."""

    def __init__(
        self,
        rt: Runtime,
        repo: RunRepository,
        stop: asyncio.Event,
        steps: StageSteps,
        chained: bool = False,
    ) -> None:
        super().__init__(rt, repo, stop)
        self.steps = steps
        self.stage = steps.stage
        self.name = steps.stage.name
        self.chained = chained
        # Each claim's LLM calls until a statement writes them, by lease token: the express lane
        # drives many runs through one worker of each stage at once.
        self.calls: dict[Any, StageCalls] = {}

    def _calls(self, item: Claim) -> StageCalls:
        return self.calls.setdefault(item.lease_token, StageCalls(self.rt.metrics))

    async def _flush(self, item: Claim) -> None:
        """Write the LLM calls no commit wrote. A database that is away loses them (logged):
        the attempt they belong to is retried and logs its own."""
        calls = self.calls.pop(item.lease_token, None)
        if calls is None or not calls.calls:
            return
        try:
            await self.repo.log_calls(item, calls.json())
        except Exception as exc:  # noqa: BLE001
            # on the failure path: never mask the failure being recorded
            log.warning("could not log %d calls of run %s: %s", len(calls.calls), item.id, exc)

    async def process(self, item: Claim) -> Committed | None:
        try:
            return await super().process(item)
        finally:
            if item.lease_token in self.calls:  # the lease was lost: nothing else wrote them
                await asyncio.shield(self._flush(item))

    async def commit(self, result: Any, item: Claim) -> Committed:
        """One statement (a maas.commit_* function): no BEGIN/COMMIT round trips. It also writes
        the attempt's LLM calls, whether or not its guard holds."""
        calls = self._calls(item)
        try:
            done = await self.steps.commit(self.repo, item, result, self._next(item), calls.json())
        except LostLease:  # the statement ran: it wrote them
            self.calls.pop(item.lease_token, None)
            raise
        self.calls.pop(item.lease_token, None)  # (a statement that failed did not: fail() does)
        return done

    def _next(self, item: Claim) -> Next | None:
        """The next stage's claim to take in this commit: only when chained (express lane), not
        after the run's last stage, and not while shutting down (the run stays queued)."""
        if not self.chained or self.stage.name not in NEXT_STAGE:
            return None
        if item.stop_at == self.stage.done.value or self.rt.stopping.is_set():
            return None
        return self.repo.next_claim()

    async def claim(self) -> Claim | None:
        return await self.repo.claim(self.stage)

    async def work(self, item: Claim) -> Any:
        return await self.steps.work(self.rt, self.repo, item, self._calls(item).record)

    async def renew(self, item: Claim) -> bool:
        return await self.repo.renew(item)

    async def fail(self, item: Claim, error: str, permanent: bool = False) -> None:
        await self._flush(item)  # first: whoever sees the run failed sees its calls too
        attempts = 0 if permanent else self.rt.settings.max_attempts  # 0: no attempt left
        delay = backoff_s(self.rt, item.attempts)
        status = await self.repo.retry_or_fail(item, self.stage, error, delay, attempts)
        self._count_failure(status in ("FAILED", "failed"))
        log.warning(
            "%s: run %s attempt %d failed (%s) -> %s",
            self.name,
            item.id,
            item.attempts,
            error,
            status,
        )

    async def release(self, item: Claim) -> None:
        await self._flush(item)
        await self.repo.release(item, self.stage)


class ArchiveWorker(Worker[Job, SliceArchived]):
    """An archive job's claim loop: each claim archives one slice of the job's range and puts
    the job back in the queue until its range is done (fair across users)."""

    name = ARCHIVIST

    async def claim(self) -> Job | None:
        return await self.repo.claim_job()

    async def work(self, item: Job) -> SliceArchived:
        return await archive(self.rt, self.repo, item, job_recorder(self.rt, self.repo, item))

    async def commit(self, result: SliceArchived, item: Job) -> Committed:
        """A slice's commit writes up to hundreds of memories: it renews the lease too."""
        write = self.repo.commit_slice(
            item, result.part, result.memories, result.dedupe_similarity, result.semantic_dedup
        )
        await self._renewing(write, item)
        return Committed()

    async def renew(self, item: Job) -> bool:
        return await self.repo.renew_job(item)

    async def fail(self, item: Job, error: str, permanent: bool = False) -> None:
        s = self.rt.settings
        attempts = 0 if permanent else s.max_attempts  # 0: no attempt left
        delay = backoff_s(self.rt, item.attempts)
        status = await self.repo.retry_or_fail_job(item, error, delay, attempts, s.archive_retry_s)
        self._count_failure(status in ("FAILED", "failed"))
        log.warning("archivist: job %s attempt %d failed: %s", item.id, item.attempts, error)

    async def release(self, item: Job) -> None:
        await self.repo.release_job(item)


def _ident(item: Any) -> str:
    return str(getattr(item, "id", item))


def _permanent(exc: BaseException) -> bool:
    return isinstance(exc, StageError) and exc.permanent


def _describe(exc: BaseException) -> str:
    if isinstance(exc, MaasError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return "stage deadline exceeded"
    return f"{type(exc).__name__}: {exc}"[:1000]


def build_workers(rt: Runtime, repo: RunRepository, stop: asyncio.Event) -> list[Worker[Any, Any]]:
    s = rt.settings
    counts = {
        "analyzer": s.analyzer_concurrency,
        "assembler": s.assembler_concurrency,
        "responder": s.responder_concurrency,
    }
    workers: list[Worker[Any, Any]] = [
        StageWorker(rt, repo, stop, STEPS[stage.name])
        for stage in STAGES
        for _ in range(counts[stage.name])
    ]
    workers += [ArchiveWorker(rt, repo, stop) for _ in range(s.archivist_concurrency)]
    return workers
