"""POST /v1/chat and POST /v1/context."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from maas.api.context import ApiContext
from maas.api.deps import caller_key, get_api
from maas.api.inputs import HARD_MAX_CHARS, Int, NonBlank, within
from maas.api.views import memory_view, run_memories, timings_ms
from maas.db.queries import q
from maas.errors import Gone
from maas.pipeline.status import is_done
from maas.pipeline.submit import ChatRequest, Submitted

router = APIRouter(prefix="/v1", tags=["chat"])


class FastJSON(JSONResponse):
    """orjson: a /v1/context reply carries every candidate (up to 200 memories), and the standard
    encoder spent more time on it than the search did."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str)  # asyncpg's own UUID type


MAX_MESSAGE = HARD_MAX_CHARS


class ChatIn(BaseModel):
    message: NonBlank = Field(min_length=1, max_length=MAX_MESSAGE)
    thread_id: uuid.UUID | None = None


class ContextIn(BaseModel):
    query: NonBlank = Field(min_length=1, max_length=MAX_MESSAGE)
    max_tokens: Int | None = Field(default=None, ge=50, le=32_000)


Api = Annotated[ApiContext, Depends(get_api)]
# Authenticated by the submit statement itself (an unknown or revoked key: 401, nothing stored).
CallerKey = Annotated[str, Depends(caller_key)]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
ClientType = Annotated[str | None, Header(alias="X-MaaS-Client", max_length=40)]


@router.post("/chat")
async def chat(
    body: ChatIn,
    api: Api,
    key: CallerKey,
    idempotency_key: IdemKey = None,
    client: ClientType = None,
    wait: Annotated[bool, Query()] = True,
) -> JSONResponse:
    """Send a message; waits for the answer unless `wait=false` (then 202 with the run id)."""
    within(body.message, api.runtime.settings.max_message_chars, "message")
    req = ChatRequest(key, body.message, body.thread_id, idempotency_key, _client(client))
    sub = await (api.lanes.drive(req) if wait else api.lanes.queue(req))
    return await _answer(api, sub, wait)


@router.post("/context")
async def context(
    body: ContextIn, api: Api, key: CallerKey, client: ClientType = None
) -> JSONResponse:
    """Analyzer + Assembler only: the packed context for a client that has its own LLM."""
    within(body.query, api.runtime.settings.max_message_chars, "query")
    req = ChatRequest(key, body.query, None, None, _client(client), "READY", body.max_tokens)
    sub = await api.lanes.drive(req)
    return await _answer(api, sub, True)


def _client(value: str | None) -> str:
    return value if value in {"client", "emulator", "test-runner", "bench"} else "client"


async def _answer(api: ApiContext, sub: Submitted, wait: bool) -> JSONResponse:
    if not wait:
        body = {"run_id": str(sub.run_id), "thread_id": _s(sub.thread_id), "status": "NEW"}
        return FastJSON(body, 202)
    # An express run has been driven already: its last commit returned it (a chat) or it is read
    # (a context). A queued run (or one the express lane left in a queue) is waited for first.
    pool = api.runtime.pool
    run = sub.run_row
    if run is None and sub.claim:
        run = await pool.fetchrow(q("get_run"), sub.run_id, sub.user_id)
    if run is None or not is_done(run["status"], run["stop_at"]):
        await api.lanes.wait(sub.run_id, api.runtime.settings.chat_wait_s)
        run = await pool.fetchrow(q("get_run"), sub.run_id, sub.user_id)
    if run is None:  # the cascade of an erasure took it (retention never prunes a fresh run)
        raise Gone(f"run {sub.run_id} no longer exists: its account was erased while it ran")
    used_only = run["stop_at"] != "READY"
    done = is_done(run["status"], run["stop_at"])
    if done and sub.memory_rows is not None:  # this request's own drive wrote them (express)
        memories = [memory_view(r) for r in sub.memory_rows(used_only)]
    else:
        memories = await run_memories(pool, sub.run_id, sub.user_id, used_only=used_only)
    return FastJSON(_payload(run, memories), status_code=200 if done else 202)


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
        "memories_used": used,  # orjson writes the uuids and datetimes (ISO 8601)
    }
    if run["stop_at"] == "READY":
        payload |= {
            "context": run["context_text"],
            "context_tokens": run["context_tokens"],
            "max_tokens": run["max_tokens"],
            "memories": memories,
        }
    return payload


def _s(value: Any) -> str | None:
    return None if value is None else str(value)
