"""Turning a request into a run, and waiting for it to finish."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from maas.db.queries import q
from maas.errors import NotFound
from maas.pipeline.claim import Claim
from maas.pipeline.runner import STAGES, claim_by_id
from maas.pipeline.status import Status, is_done
from maas.runtime.context import Runtime
from maas.runtime.signals import wait_any

# The statuses a run can end at (stop_at is READY or COMPLETED): only these wake a waiter, so
# it does not read the row once per stage. The poll interval still catches a lost one.
ENDS = frozenset({Status.READY, Status.COMPLETED, Status.FAILED})


@dataclass(frozen=True)
class Submitted:
    run_id: uuid.UUID
    thread_id: uuid.UUID | None
    replayed: bool = False
    claim: Claim | None = None  # the analyzer's claim, taken in the same commit (express lane)


class _KeyTaken(Exception):
    """Another request with the same idempotency key committed first."""


@dataclass(frozen=True)
class ChatRequest:
    user_id: uuid.UUID
    message: str
    thread_id: uuid.UUID | None
    idempotency_key: str | None = None
    client_type: str = "client"
    stop_at: str = "COMPLETED"
    max_tokens: int | None = None


async def submit(rt: Runtime, req: ChatRequest, express: bool = False) -> Submitted:
    """Message + run in one transaction; a replayed idempotency key returns the first run.
    With `express` the same commit claims the run for the analyzer (see express.py)."""
    if req.idempotency_key:
        found = await _by_key(rt, req)
        if found:
            return found
    try:
        async with rt.pool.acquire() as conn, conn.transaction():
            sub = await _insert(conn, rt, req)
            if express:
                claim = await claim_by_id(rt, conn, sub.run_id, STAGES[0])
                if claim is not None:  # before the commit, whose notifications come after
                    rt.signals.driving(str(sub.run_id), rt.settings.lease_s)
                sub = Submitted(sub.run_id, sub.thread_id, claim=claim)
            return sub
    except _KeyTaken:
        found = await _by_key(rt, req)
        assert found is not None
        return found


async def _by_key(rt: Runtime, req: ChatRequest) -> Submitted | None:
    row = await rt.pool.fetchrow(q("run_by_idempotency_key"), req.user_id, req.idempotency_key)
    return Submitted(row["id"], row["thread_id"], replayed=True) if row else None


async def _insert(conn: Any, rt: Runtime, req: ChatRequest) -> Submitted:
    thread_id = await _thread(conn, req) if req.stop_at == "COMPLETED" else req.thread_id
    message_id = None
    if thread_id is not None:
        message_id = await conn.fetchval(
            q("insert_message"), thread_id, req.user_id, "user", None, req.message, None
        )
    run_id = await conn.fetchval(
        q("insert_run"),
        req.user_id,
        thread_id,
        message_id,
        req.message,
        rt.llm.mode,
        req.stop_at,
        req.client_type,
        req.idempotency_key,
        req.max_tokens,
    )
    if run_id is None:
        raise _KeyTaken()
    if message_id is not None:
        await conn.execute(q("link_message_run"), message_id, run_id)
    return Submitted(run_id, thread_id)


async def _thread(conn: Any, req: ChatRequest) -> uuid.UUID:
    if req.thread_id is None:
        title = req.message.strip().splitlines()[0][:80] if req.message.strip() else "chat"
        thread_id: uuid.UUID = await conn.fetchval(q("insert_thread"), req.user_id, title)
        return thread_id
    if await conn.fetchrow(q("own_thread"), req.thread_id, req.user_id) is None:
        raise NotFound(f"thread {req.thread_id} not found")
    await conn.execute(q("reopen_thread"), req.thread_id)
    return req.thread_id


async def wait_done(rt: Runtime, run_id: uuid.UUID, timeout_s: float) -> Any:
    """Wait for the run to finish (NOTIFY wakes us, polling catches lost wake-ups).

    When the process starts shutting down, wait at most until just before the grace period ends,
    so the caller still gets an answer (202 with the run id) instead of a dropped connection.
    """
    deadline = time.monotonic() + timeout_s
    draining = False
    async with rt.signals.watch(str(run_id), ENDS) as event:
        while True:
            event.clear()
            if rt.stopping.is_set() and not draining:
                draining = True
                deadline = min(deadline, time.monotonic() + rt.grace_s() - 0.5)
            row = await rt.pool.fetchrow(q("run_status"), run_id)
            remaining = deadline - time.monotonic()
            if row is None or is_done(row["status"], row["stop_at"]) or remaining <= 0:
                return row
            wakes = (event,) if draining else (event, rt.stopping)
            await wait_any(min(rt.settings.poll_s, remaining), *wakes)
