"""Threads: create, list, read, close (which queues the archivist)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field, field_validator

from maas.api.context import ApiContext
from maas.api.deps import User, current_user, get_api, get_runtime
from maas.api.inputs import BIGINT_MAX, NonBlank, Text
from maas.db.queries import q
from maas.errors import NotFound
from maas.runtime.context import Runtime

router = APIRouter(prefix="/v1/threads", tags=["threads"])
Rt = Annotated[Runtime, Depends(get_runtime)]
Caller = Annotated[User, Depends(current_user)]
Api = Annotated[ApiContext, Depends(get_api)]


class ThreadIn(BaseModel):
    title: NonBlank | None = Field(default=None, max_length=200)


FUTURE_SKEW = timedelta(hours=1)  # an imported message's time may be ahead of ours by this


class ImportedMessage(BaseModel):
    role: Literal["user", "assistant", "other"]
    speaker: Text | None = Field(default=None, max_length=200)
    text: NonBlank = Field(min_length=1, max_length=32_000)
    created_at: datetime | None = None

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A time without a zone is taken as UTC. A time past the clock skew allowed is refused:
        a thread's idle archiving counts from its last message, so a message dated 2099 left
        its thread unarchived for ever."""
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value is not None and value > datetime.now(UTC) + FUTURE_SKEW:
            raise ValueError(f"is in the future (more than {FUTURE_SKEW} after now)")
        return value


class ImportIn(BaseModel):
    messages: list[ImportedMessage] = Field(min_length=1, max_length=2000)


async def own_thread(rt: Runtime, thread_id: uuid.UUID, user: User) -> Any:
    row = await rt.pool.fetchrow(q("own_thread"), thread_id, user.id)
    if row is None:
        raise NotFound(f"thread {thread_id} not found")
    return row


@router.post("", status_code=201)
async def create_thread(body: ThreadIn, rt: Rt, user: Caller) -> dict[str, Any]:
    thread_id = await rt.pool.fetchval(q("insert_thread"), user.id, body.title)
    return {"thread_id": str(thread_id), "title": body.title}


@router.get("")
async def list_threads(
    rt: Rt, user: Caller, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> Any:
    rows = await rt.pool.fetch(q("list_threads"), user.id, limit)
    return jsonable_encoder({"threads": [dict(r) for r in rows]})


PAGE_MAX = 1000  # messages per reply: a thread grows without bound (imports, chats)


@router.get("/{thread_id}")
async def get_thread(
    thread_id: uuid.UUID,
    rt: Rt,
    user: Caller,
    after: Annotated[int, Query(ge=0, le=BIGINT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = PAGE_MAX,
) -> Any:
    """The thread and a page of its messages, oldest first: those after message id `after`;
    `next_after` continues (null: no more)."""
    thread = await own_thread(rt, thread_id, user)
    messages = await rt.pool.fetch(q("thread_messages"), thread_id, user.id, after, limit)
    more = messages[-1]["id"] if len(messages) == limit else None
    page = {"messages": [dict(m) for m in messages], "next_after": more}
    return jsonable_encoder({**dict(thread), **page})


@router.post("/{thread_id}/messages", status_code=201)
async def import_messages(thread_id: uuid.UUID, body: ImportIn, rt: Rt, user: Caller) -> Any:
    """Append existing dialog history (no responder runs); timestamps are kept."""
    msgs = body.messages
    async with rt.pool.acquire() as conn, conn.transaction():
        await own_thread(rt, thread_id, user)
        rows = await conn.fetch(
            q("import_messages"),
            thread_id,
            user.id,
            [m.role for m in msgs],
            [m.speaker for m in msgs],
            [m.text for m in msgs],
            [m.created_at for m in msgs],
        )
        latest = max((m.created_at for m in msgs if m.created_at), default=None)
        if latest is not None:
            await conn.execute(q("touch_thread_at"), thread_id, latest)
    return {"thread_id": str(thread_id), "message_ids": sorted(r["id"] for r in rows)}


@router.post("/{thread_id}/close")
async def close_thread(thread_id: uuid.UUID, api: Api, user: Caller) -> Any:
    """Close the thread and queue the archivist for its unarchived messages."""
    async with api.runtime.pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(q("close_thread"), thread_id, user.id) is None:
            raise NotFound(f"thread {thread_id} not found")
        job = await api.repo.queue_archive(conn, thread_id, user.id, "closed")
    return {"thread_id": str(thread_id), "closed": True, "archive_job_id": job}
