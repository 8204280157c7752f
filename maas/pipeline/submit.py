"""Turning a request into a run, and waiting for it to finish."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from maas.db.queries import q
from maas.errors import UNKNOWN_KEY, Unauthorized
from maas.pipeline.claim import Claim
from maas.pipeline.repo import KeyTaken, RunRepository, Submission
from maas.pipeline.status import Status, is_done
from maas.runtime.context import Runtime
from maas.runtime.loops import wait_any

# The statuses a run can end at (stop_at is READY or COMPLETED): only these wake a waiter, so
# it does not read the row once per stage. The poll interval still catches a lost one.
ENDS = frozenset({Status.READY, Status.COMPLETED, Status.FAILED})


@dataclass(frozen=True)
class Submitted:
    run_id: uuid.UUID
    thread_id: uuid.UUID | None
    user_id: uuid.UUID
    replayed: bool = False
    claim: Claim | None = None  # the analyzer's claim, taken in the same commit (express lane)
    # What the driving request's assembler committed (express lane): the run's memories as the
    # run_memories query returns them (argument: packed ones only).
    memory_rows: Callable[[bool], list[dict[str, Any]]] | None = None
    # The finished run as get_run returns it, when the driving request's responder committed it.
    run_row: Any = None


@dataclass(frozen=True)
class ChatRequest:
    key_hash: str  # the caller's API key (sha256): the submit authenticates it (maas.credentials)
    message: str
    thread_id: uuid.UUID | None
    idempotency_key: str | None = None
    client_type: str = "client"
    stop_at: str = "COMPLETED"
    max_tokens: int | None = None
    # The client's system message and sampling options for the model (the OpenAI-compatible
    # endpoint's; ResponderOptions.to_json), and the run's id when the caller picks it (to name
    # the run in a response whose headers go out before the run exists).
    responder_options: dict[str, Any] | None = None
    run_id: uuid.UUID | None = None


async def submit(
    rt: Runtime, repo: RunRepository, req: ChatRequest, express: bool = False
) -> Submitted:
    """Message + run in one statement (maas.submit_run), which also authenticates the caller
    (Unauthorized for an unknown or revoked key); a replayed idempotency key returns the first
    run. With `express` the same commit claims the run for the analyzer (see express.py)."""
    if req.idempotency_key:
        found = await _by_key(rt, repo, req)
        if found:
            return found
    run_id = req.run_id or uuid.uuid4()
    if express:  # before the commit: its notifications (NEW, ANALYZING) must wake no worker here
        rt.signals.driving(str(run_id), rt.settings.lease_s)
    claimed = False
    try:
        row = await _submit_row(rt, repo, req, run_id, express)
        claimed = row is not None and row["lease_token"] is not None
    finally:
        if express and not claimed:  # it waits in its queue (or failed): workers may take it
            rt.signals.driven_until(str(run_id), 0)
    if row is None:  # another request with the same key committed first
        found = await _by_key(rt, repo, req)
        assert found is not None
        return found
    claim = _claim(row, req) if claimed else None
    return Submitted(row["run_id"], row["thread_id"], row["user_id"], claim=claim)


async def _submit_row(
    rt: Runtime, repo: RunRepository, req: ChatRequest, run_id: uuid.UUID, express: bool
) -> Any:
    """The submit_run row; None when the idempotency key is taken."""
    s = Submission(
        run_id, req.key_hash, req.thread_id, _title(req.message), req.message,
        rt.models.mode, req.stop_at, req.client_type, req.idempotency_key, req.max_tokens,
        express, req.responder_options,
    )  # fmt: skip
    try:
        row = await repo.submit(s)
    except KeyTaken:
        return None
    if row is None:
        raise Unauthorized(UNKNOWN_KEY)
    return row


def _claim(row: Any, req: ChatRequest) -> Claim:
    """The analyzer's claim taken by submit_run: a new run, so nothing of it is known yet."""
    return Claim(
        id=row["run_id"],
        user_id=row["user_id"],
        thread_id=row["thread_id"],
        message_id=row["message_id"],
        query=req.message,
        mode=row["mode"],
        stop_at=req.stop_at,
        max_tokens=req.max_tokens,
        attempts=1,
        lease_token=row["lease_token"],
        params=None,
        param_version=None,
        analyzer_output=None,
        context_text=None,
        responder_options=req.responder_options,
    )


def _title(message: str) -> str:
    return message.strip().splitlines()[0][:80] if message.strip() else "chat"


async def _by_key(rt: Runtime, repo: RunRepository, req: ChatRequest) -> Submitted | None:
    """The run of the caller's idempotency key, if any (the caller's key authenticated first)."""
    user = await rt.pool.fetchval(q("user_by_key_hash"), req.key_hash)  # its first column: id
    if user is None:
        raise Unauthorized(UNKNOWN_KEY)
    assert req.idempotency_key is not None
    row = await repo.run_by_idempotency_key(user, req.idempotency_key)
    return Submitted(row["id"], row["thread_id"], user, replayed=True) if row else None


async def wait_done(rt: Runtime, repo: RunRepository, run_id: uuid.UUID, timeout_s: float) -> Any:
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
            row = await repo.run_status(run_id)
            remaining = deadline - time.monotonic()
            if row is None or is_done(row["status"], row["stop_at"]) or remaining <= 0:
                return row
            wakes = (event,) if draining else (event, rt.stopping)
            await wait_any(min(rt.settings.poll_s, remaining), *wakes)
