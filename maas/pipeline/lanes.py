"""The API's way into the pipeline: a run submitted for the workers, a run the request drives
itself (the express lane), a run waited for. route -> lanes -> runner -> agents -> repository."""

from __future__ import annotations

import uuid
from typing import Any

from maas.pipeline.express import ExpressLane
from maas.pipeline.repo import RunRepository
from maas.pipeline.submit import ChatRequest, Submitted, submit, wait_done
from maas.runtime.context import Runtime


class Lanes:
    def __init__(self, rt: Runtime, repo: RunRepository) -> None:
        self.rt = rt
        self.repo = repo
        self.express = ExpressLane(rt, repo)

    async def queue(self, req: ChatRequest) -> Submitted:
        """Submit the run; the workers take it from there (POST /v1/chat?wait=false)."""
        return await submit(self.rt, self.repo, req)

    async def drive(self, req: ChatRequest) -> Submitted:
        """The caller waits: its own task drives the run if a slot is free, else the workers."""
        return await self.express.submit_and_drive(req)

    async def wait(self, run_id: uuid.UUID, timeout_s: float) -> Any:
        """The run's status once it is done (or the timeout passed, or shutdown came)."""
        return await wait_done(self.rt, self.repo, run_id, timeout_s)
