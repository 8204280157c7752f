"""The express lane: a request that waits for its answer drives its own run through the stages.

The stage workers hand a run from stage to stage through the queue: a commit, a NOTIFY, a wake-up
and a claim per hand-off. When the caller is waiting anyway, the request's own task can do the
same work with the same guarantees and none of the hand-offs: the message's commit claims the run
for the analyzer, and each stage's commit claims the next stage (maas.claim_stage). Every status is
still entered, stamped and recorded (run_events, NOTIFY) by the same triggers, every claim has a
lease that is renewed while a stage works, and a failed, cancelled or lost stage leaves the run in
its queue exactly as a worker would, so the workers (of any process) take it from there. See
docs/decisions/0010-express-lane.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

from maas.pipeline.claim import Claim
from maas.pipeline.repo import Committed, RunRepository
from maas.pipeline.runner import StageWorker
from maas.pipeline.stages import STEPS
from maas.pipeline.status import STAGES
from maas.pipeline.submit import ChatRequest, Submitted, submit
from maas.runtime.context import Runtime

# After the last commit the driver still ignores this run's queue notifications for this long:
# they arrive a moment later over the listener connection.
SETTLE_S = 2.0


class ExpressLane:
    """At most `settings.express_concurrency` runs driven at once by request tasks, at most
    `settings.express_per_user` of them for one caller (so one tenant cannot take every slot);
    beyond that (or with 0) requests queue their runs for the workers, which claim fairly across
    users."""

    def __init__(self, rt: Runtime, repo: RunRepository) -> None:
        self.rt = rt
        self.repo = repo
        self.size = rt.settings.express_concurrency
        self.per_user = rt.settings.express_per_user
        self.held: Counter[str] = Counter()  # slots in use by API key hash (one key per user)
        self.workers = {
            s.name: StageWorker(rt, repo, rt.stopping, STEPS[s.name], chained=True) for s in STAGES
        }

    def _free_for(self, key_hash: str) -> bool:
        if self.size <= 0 or self.rt.stopping.is_set():
            return False
        return self.held.total() < self.size and self.held[key_hash] < self.per_user

    @contextlib.contextmanager
    def _slot(self, key_hash: str) -> Iterator[None]:
        self.held[key_hash] += 1
        try:
            yield
        finally:
            self.held[key_hash] -= 1
            if not self.held[key_hash]:
                del self.held[key_hash]

    async def submit_and_drive(self, req: ChatRequest) -> Submitted:
        if not self._free_for(req.key_hash):
            return await submit(self.rt, self.repo, req)
        with self._slot(req.key_hash):  # checked and taken with no await in between
            sub = await submit(self.rt, self.repo, req, express=True)
            if sub.claim is None:
                return sub
            committed = await self.drive(sub.claim)
            rows = next((c.memories for c in committed if c.memories is not None), None)
            run = next((c.run for c in committed if c.run is not None), None)
            return replace(sub, memory_rows=rows, run_row=run)

    async def drive(self, claim: Claim) -> list[Committed]:
        """Analyzer, assembler, responder in turn, while each commit hands over the next claim.
        Returns what the commits that succeeded did, in order."""
        item: Claim | None = claim
        finished = False
        committed: list[Committed] = []
        try:
            for stage in STAGES:
                if item is None:
                    break
                done = await self._stage(self.workers[stage.name], item)
                if done is not None:
                    committed.append(done)
                item = done.next if done is not None else None
            finished = True
            return committed
        finally:
            # The drive ended (done, or a stage failed and its retry waits out a backoff anyway):
            # keep quiet until the last commit's notifications are in. Cancelled: the released
            # run is back in its queue and the workers must hear of it at once.
            self.rt.signals.driven_until(str(claim.id), SETTLE_S if finished else 0)

    async def _stage(self, worker: StageWorker, item: Claim) -> Committed | None:
        """One stage; when the process starts shutting down, it may finish until just before the
        grace period ends, then it is cancelled and releases its claim (the run waits in its
        queue for the next process), so the waiting caller still gets its 202 in time."""
        task = asyncio.ensure_future(worker.process(item))
        stopping = asyncio.ensure_future(self.rt.stopping.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                await asyncio.wait({task}, timeout=self.rt.grace_s() - 1.0)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return None
            done: Committed | None = task.result()
            return done
        finally:
            stopping.cancel()
            task.cancel()  # the request itself was cancelled: process() releases the claim
