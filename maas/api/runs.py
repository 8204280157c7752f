"""GET /v1/runs/{id} and its live status stream (SSE)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import StreamingResponse

from maas.api.deps import User, get_runtime
from maas.api.principal import Principal, principal
from maas.api.views import full_run
from maas.db.queries import q
from maas.errors import NotFound
from maas.pipeline.status import is_done
from maas.runtime.context import Runtime
from maas.runtime.loops import wait_any

router = APIRouter(prefix="/v1/runs", tags=["runs"])
Rt = Annotated[Runtime, Depends(get_runtime)]
Viewer = Annotated[Principal, Depends(principal)]


async def own_run(rt: Runtime, run_id: uuid.UUID, user: User) -> Any:
    run = await rt.pool.fetchrow(q("get_run"), run_id, user.id)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return run


async def visible_run(rt: Runtime, run_id: uuid.UUID, who: Principal) -> Any:
    """A user reads their own runs and those of the throwaway users their test runs created;
    the admin key reads any run (read-only)."""
    run = await rt.pool.fetchrow(q("get_run"), run_id, who.user_id)
    if run is None and who.user_id is not None:
        owner = await rt.pool.fetchval(q("run_owner_via_test_run"), run_id, who.user_id)
        run = None if owner is None else await rt.pool.fetchrow(q("get_run"), run_id, owner)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return run


@router.get("/{run_id}")
async def get_run(run_id: uuid.UUID, rt: Rt, who: Viewer) -> Any:
    """Status history with timestamps, analyzer output, retrieved memories, LLM calls."""
    run = await visible_run(rt, run_id, who)
    async with rt.pool.acquire() as conn:
        return jsonable_encoder(await full_run(conn, run))


@router.get("/{run_id}/events")
async def run_events(run_id: uuid.UUID, request: Request, rt: Rt, who: Viewer) -> Any:
    """Server-Sent Events: one `status` event per change; the stream ends when the run does."""
    run = await visible_run(rt, run_id, who)
    return StreamingResponse(
        _stream(rt, run_id, request, run["user_id"]),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    rt: Runtime, run_id: uuid.UUID, request: Request, owner: uuid.UUID
) -> AsyncIterator[str]:
    last = 0
    async with rt.signals.watch(str(run_id)) as wake:
        while not await request.is_disconnected():
            wake.clear()
            # Status first: the events of a change commit with it, so the events read next include
            # the final one (read the other way round, a run that ended between the two reads lost
            # its last event from the stream).
            state = await rt.pool.fetchrow(q("run_status"), run_id)
            for event in await rt.pool.fetch(q("run_events"), run_id, last, owner):
                last = event["id"]
                yield _sse(dict(event))
            if state is None or is_done(state["status"], state["stop_at"]):
                yield "event: end\ndata: {}\n\n"
                return
            await wait_any(rt.settings.poll_s, wake)


def _sse(event: dict[str, Any]) -> str:
    data = json.dumps(jsonable_encoder(event))
    return f"id: {event['id']}\nevent: status\ndata: {data}\n\n"
