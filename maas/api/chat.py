"""POST /v1/chat and POST /v1/context."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from maas.api.deps import User, current_user, get_runtime
from maas.api.inputs import HARD_MAX_CHARS, NonBlank, within
from maas.api.views import run_memories, timings_ms
from maas.db.queries import q
from maas.pipeline.submit import ChatRequest, Submitted, submit, wait_done
from maas.runtime.context import Runtime

router = APIRouter(prefix="/v1", tags=["chat"])
MAX_MESSAGE = HARD_MAX_CHARS


class ChatIn(BaseModel):
    message: NonBlank = Field(min_length=1, max_length=MAX_MESSAGE)
    thread_id: uuid.UUID | None = None


class ContextIn(BaseModel):
    query: NonBlank = Field(min_length=1, max_length=MAX_MESSAGE)
    max_tokens: int | None = Field(default=None, ge=50, le=32_000)


Rt = Annotated[Runtime, Depends(get_runtime)]
Caller = Annotated[User, Depends(current_user)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
ClientType = Annotated[str | None, Header(alias="X-MaaS-Client", max_length=40)]


@router.post("/chat")
async def chat(
    body: ChatIn,
    rt: Rt,
    user: Caller,
    idempotency_key: IdemKey = None,
    client: ClientType = None,
    wait: Annotated[bool, Query()] = True,
) -> JSONResponse:
    """Send a message; waits for the answer unless `wait=false` (then 202 with the run id)."""
    within(body.message, rt.settings.max_message_chars, "message")
    req = ChatRequest(user.id, body.message, body.thread_id, idempotency_key, _client(client))
    sub = await (_drive(rt, req) if wait else submit(rt, req))
    return await _answer(rt, user, sub.run_id, sub.thread_id, wait)


@router.post("/context")
async def context(body: ContextIn, rt: Rt, user: Caller, client: ClientType = None) -> JSONResponse:
    """Analyzer + Assembler only: the packed context for a client that has its own LLM."""
    within(body.query, rt.settings.max_message_chars, "query")
    req = ChatRequest(user.id, body.query, None, None, _client(client), "READY", body.max_tokens)
    sub = await _drive(rt, req)
    return await _answer(rt, user, sub.run_id, None, True)


async def _drive(rt: Runtime, req: ChatRequest) -> Submitted:
    """The caller waits: its own task drives the run (express lane), else the workers do."""
    if rt.express is None:
        return await submit(rt, req)
    return await rt.express.submit_and_drive(req)


def _client(value: str | None) -> str:
    return value if value in {"client", "emulator", "test-runner", "bench"} else "client"


async def _answer(
    rt: Runtime, user: User, run_id: uuid.UUID, thread_id: Any, wait: bool
) -> JSONResponse:
    if not wait:
        return JSONResponse(
            {"run_id": str(run_id), "thread_id": _s(thread_id), "status": "NEW"}, 202
        )
    await wait_done(rt, run_id, rt.settings.chat_wait_s)
    async with rt.pool.acquire() as conn:
        run = await conn.fetchrow(q("get_run"), run_id, user.id)
        memories = await run_memories(conn, run_id, user.id, used_only=run["stop_at"] != "READY")
    done = run["status"] in ("COMPLETED", "FAILED") or run["status"] == run["stop_at"]
    return JSONResponse(_payload(run, memories), status_code=200 if done else 202)


def _payload(run: Any, memories: list[dict[str, Any]]) -> dict[str, Any]:
    used = [m for m in memories if m["used"]]
    payload: dict[str, Any] = {
        "run_id": str(run["id"]),
        "thread_id": _s(run["thread_id"]),
        "status": run["status"],
        "mode": run["mode"],
        "answer": run["answer"],
        "error": run["error"],
        "timings_ms": timings_ms(run),
        "memories_used": [_jsonable(m) for m in used],
    }
    if run["stop_at"] == "READY":
        payload |= {
            "context": run["context_text"],
            "context_tokens": run["context_tokens"],
            "max_tokens": run["max_tokens"],
            "memories": [_jsonable(m) for m in memories],
        }
    return payload


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


def _jsonable(m: dict[str, Any]) -> dict[str, Any]:
    return {
        **m,
        "source_thread_id": _s(m["source_thread_id"]),
        "event_time": m["event_time"].isoformat() if m["event_time"] else None,
    }
