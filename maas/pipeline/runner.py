"""Stage runners: clear the wake-up, claim under a lease, do the work, commit with a guard.

The row is the truth and NOTIFY only wakes: a runner drains its queue, then waits for a wake-up,
a stop or the poll interval, whichever comes first.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from maas.agents import analyzer, archivist, assembler, responder
from maas.db.queries import q
from maas.errors import MaasError, StageError
from maas.llm.types import Recorder
from maas.pipeline.calls import StageCalls
from maas.pipeline.claim import Claim, Commit, Next, StageCommit
from maas.pipeline.status import Status
from maas.runtime.context import Runtime
from maas.runtime.loops import wait_any
from maas.runtime.signals import Doorbell

log = logging.getLogger(__name__)
T = TypeVar("T")
C = TypeVar("C")  # what a stage's work hands to its commit
R = TypeVar("R")


class LostLease(Exception):
    """The guarded commit found the row moved on: someone else owns it now."""


def backoff_s(rt: Runtime, attempts: int) -> float:
    base = rt.settings.backoff_base_s * 2.0 ** max(attempts - 1, 0)
    jitter: float = random.uniform(0.8, 1.2)  # noqa: S311 (not for security)
    return min(base, rt.settings.backoff_max_s) * jitter


class Worker(ABC, Generic[T, C]):
    """One claim loop. Subclasses say how to claim, work, commit, retry and release."""

    name: str

    def __init__(self, rt: Runtime, stop: asyncio.Event) -> None:
        self.rt = rt
        self.stop = stop
        self.current: T | None = None

    @property
    def doorbell(self) -> Doorbell:
        return self.rt.signals.stage[self.stage_key]

    @property
    @abstractmethod
    def stage_key(self) -> str: ...

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

    async def process(self, item: T, committed: list[C] | None = None) -> Any:
        """Work, then commit; returns what the commit claimed for the next stage, if anything.
        A successful commit is appended to `committed` when given (the express lane's reply)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.rt.settings.stage_deadline_s + 5):
                commit = await self._holding_lease(item)
            worked = time.perf_counter()
            chained = await self._commit(commit, item)
            self._observe(started, worked, time.perf_counter())
            if committed is not None:
                committed.append(commit)
            return chained
        except LostLease:
            log.warning("%s: lease lost for %s; another worker owns it", self.name, _ident(item))
        except asyncio.CancelledError:
            await asyncio.shield(self.release(item))
            raise
        except Exception as exc:  # task boundary: every failure is recorded on the row
            await self.fail(item, _describe(exc), _permanent(exc))
        return None

    def _observe(self, started: float, worked: float, done: float) -> None:
        self.rt.metrics.stage_seconds.labels(self.name).observe(done - started)
        self.rt.metrics.stage_commit_seconds.labels(self.name).observe(done - worked)

    async def _holding_lease(self, item: T) -> C:
        """Run the work while renewing the lease every L/3; a lost lease cancels the work.

        A live worker keeps its claim however long a stage takes; a dead or paused one stops
        renewing, so after L the requeue hands the run to someone else.
        """
        return await self._renewing(self.work(item), item)

    async def _renewing(self, work: Awaitable[R], item: T) -> R:
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
        except Exception as exc:  # the database may be away: the commit guard decides later
            log.warning("%s: could not renew lease of %s: %s", self.name, _ident(item), exc)
            return True

    @abstractmethod
    async def _commit(self, commit: C, item: T) -> Any:
        """Apply the work's effects under the guard (LostLease when it does not hold)."""

    @abstractmethod
    async def claim(self) -> T | None: ...

    @abstractmethod
    async def work(self, item: T) -> C: ...

    @abstractmethod
    async def renew(self, item: T) -> bool: ...

    @abstractmethod
    async def fail(self, item: T, error: str, permanent: bool = False) -> None: ...

    @abstractmethod
    async def release(self, item: T) -> None: ...

    def _count_failure(self, final: bool) -> None:
        self.rt.metrics.stage_failures.labels(self.name, "failed" if final else "retry").inc()


@dataclass(frozen=True)
class Stage:
    name: str
    queue: Status
    working: Status
    done: Status
    work: Callable[[Runtime, Claim, Recorder], Awaitable[StageCommit]]


STAGES = (
    Stage("analyzer", Status.NEW, Status.ANALYZING, Status.ANALYZED, analyzer.analyze),
    Stage("assembler", Status.ANALYZED, Status.ASSEMBLING, Status.READY, assembler.assemble),
    Stage("responder", Status.READY, Status.RESPONDING, Status.COMPLETED, responder.respond),
)
NEXT_STAGE = {a.name: b for a, b in zip(STAGES, STAGES[1:], strict=False)}


class StageWorker(Worker[Claim, StageCommit]):
    """A stage's claim loop; with `chained`, each commit also claims the run's next stage (the
    express lane drives one run through every stage with it, see maas/pipeline/express.py)."""

    def __init__(
        self, rt: Runtime, stop: asyncio.Event, stage: Stage, chained: bool = False
    ) -> None:
        super().__init__(rt, stop)
        self.stage = stage
        self.name = stage.name
        self.chained = chained
        # Each claim's LLM calls until a statement writes them, by lease token: the express lane
        # drives many runs through one worker of each stage at once.
        self.calls: dict[Any, StageCalls] = {}

    def _calls(self, item: Claim) -> StageCalls:
        return self.calls.setdefault(item.lease_token, StageCalls(self.rt, item.id, item.user_id))

    async def _flush(self, item: Claim) -> None:
        calls = self.calls.pop(item.lease_token, None)
        if calls is not None:
            await calls.flush()

    async def process(self, item: Claim, committed: list[StageCommit] | None = None) -> Any:
        try:
            return await super().process(item, committed)
        finally:
            if item.lease_token in self.calls:  # the lease was lost: nothing else wrote them
                await asyncio.shield(self._flush(item))

    async def _commit(self, commit: StageCommit, item: Claim) -> Claim | None:
        """One statement (maas.commit_*): no BEGIN/COMMIT round trips. It also writes the
        attempt's LLM calls, whether or not its guard holds."""
        calls = self._calls(item)
        async with self.rt.pool.acquire() as conn:
            row = await commit(conn, self._next(item), calls.json())
        self.calls.pop(item.lease_token, None)
        if row is None or not row["finished"]:
            raise LostLease()
        return Claim.from_row(row) if row["lease_token"] is not None else None

    def _next(self, item: Claim) -> Next | None:
        """The next stage's claim to take in this commit: only when chained (express lane), not
        after the run's last stage, and not while shutting down (the run stays queued)."""
        if not self.chained or self.stage.name not in NEXT_STAGE:
            return None
        if item.stop_at == self.stage.done.value or self.rt.stopping.is_set():
            return None
        return Next(self.rt.settings.lease_s, self.rt.worker_id)

    @property
    def stage_key(self) -> str:
        return self.stage.name

    async def claim(self) -> Claim | None:
        row = await self.rt.pool.fetchrow(
            q("claim_run"),
            self.stage.queue.value,
            self.stage.working.value,
            self.rt.settings.lease_s,
            self.rt.worker_id,
        )
        return Claim.from_row(row) if row else None

    async def work(self, item: Claim) -> StageCommit:
        return await self.stage.work(self.rt, item, self._calls(item).record)

    async def renew(self, item: Claim) -> bool:
        found = await self.rt.pool.fetchval(
            q("renew_run_lease"), item.id, item.lease_token, self.rt.settings.lease_s
        )
        return found is not None

    async def fail(self, item: Claim, error: str, permanent: bool = False) -> None:
        await self._flush(item)  # first: whoever sees the run failed sees its calls too
        status = await self.rt.pool.fetchval(
            q("retry_or_fail_run"),
            item.id,
            item.lease_token,
            self.stage.queue.value,
            error,
            backoff_s(self.rt, item.attempts),
            0 if permanent else self.rt.settings.max_attempts,  # 0: no attempt left
        )
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
        await self.rt.pool.execute(
            q("release_run"), item.id, item.lease_token, self.stage.queue.value
        )


class ArchiveWorker(Worker[archivist.Job, Commit]):
    name = "archivist"

    @property
    def stage_key(self) -> str:
        return "archivist"

    async def claim(self) -> archivist.Job | None:
        row = await self.rt.pool.fetchrow(
            q("claim_archive_job"), self.rt.settings.lease_s, self.rt.worker_id
        )
        return archivist.Job.from_row(row) if row else None

    async def work(self, item: archivist.Job) -> Commit:
        commit: Commit = await archivist.archive(self.rt, item)
        return commit

    async def _commit(self, commit: Commit, item: archivist.Job) -> None:
        """A slice's commit writes hundreds of memories: it renews the lease too."""
        await self._renewing(self._write(commit), item)

    async def _write(self, commit: Commit) -> None:
        async with self.rt.pool.acquire() as conn, conn.transaction():
            if not await commit(conn):
                raise LostLease()

    async def renew(self, item: archivist.Job) -> bool:
        found = await self.rt.pool.fetchval(
            q("renew_archive_lease"), item.id, item.lease_token, self.rt.settings.lease_s
        )
        return found is not None

    async def fail(self, item: archivist.Job, error: str, permanent: bool = False) -> None:
        status = await self.rt.pool.fetchval(
            q("retry_or_fail_archive_job"),
            item.id,
            item.lease_token,
            error,
            backoff_s(self.rt, item.attempts),
            0 if permanent else self.rt.settings.max_attempts,  # 0: no attempt left
            self.rt.settings.archive_retry_s,
        )
        self._count_failure(status in ("FAILED", "failed"))
        log.warning("archivist: job %s attempt %d failed: %s", item.id, item.attempts, error)

    async def release(self, item: archivist.Job) -> None:
        await self.rt.pool.execute(q("release_archive_job"), item.id, item.lease_token)


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


def build_workers(rt: Runtime, stop: asyncio.Event) -> list[Worker[Any, Any]]:
    s = rt.settings
    counts = {
        "analyzer": s.analyzer_concurrency,
        "assembler": s.assembler_concurrency,
        "responder": s.responder_concurrency,
    }
    workers: list[Worker[Any, Any]] = [
        StageWorker(rt, stop, stage) for stage in STAGES for _ in range(counts[stage.name])
    ]
    workers += [ArchiveWorker(rt, stop) for _ in range(s.archivist_concurrency)]
    return workers
