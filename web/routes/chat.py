"""The chat page: threads, messages, the memories each answer used, the archivist's memories.

Sending a message and closing a thread go from the browser to the JSON API (/v1/chat,
/v1/threads/{id}/close) with the session cookie; the status moves live over the run's SSE."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, RedirectResponse, Response

from maas.api.deps import User
from maas.db.queries import q
from maas.pipeline.status import is_done
from maas.runtime.context import Runtime
from web.queries import wq
from web.render import render
from web.routes.common import Owner, Rt, Who, form, not_found

router = APIRouter(include_in_schema=False)


@router.get("/ui/chat")
async def chat_page(
    request: Request, rt: Rt, who: Who, thread: uuid.UUID | None = None
) -> Response:
    if who.user is None:  # the admin key has no conversations; it reads runs
        return RedirectResponse("/ui/runs", status_code=303)
    threads = await rt.pool.fetch(q("list_threads"), who.user.id, 100)
    current = None
    if thread is not None:
        current = await _thread_view(rt, thread, who.user)
        if current is None:
            return not_found(request, who, "This thread does not exist or is not yours.")
    limit = rt.settings.max_message_chars  # the API's own limit: the page counts toward it
    return render(request, "pages/chat.html", who, threads=threads, thread=current, limit=limit)


SHOWN = 500  # the page shows a thread's last messages; GET /v1/threads/{id} pages through all


async def _thread_view(rt: Runtime, thread_id: uuid.UUID, user: User) -> dict[str, Any] | None:
    async with rt.pool.acquire() as conn:
        thread = await conn.fetchrow(q("own_thread"), thread_id, user.id)
        if thread is None:
            return None
        messages = await conn.fetch(q("thread_tail"), thread_id, user.id, SHOWN)
        runs = await conn.fetch(wq("web_thread_runs"), thread_id, user.id)
        used = await conn.fetch(wq("web_thread_memories_used"), thread_id, user.id)
        made = await conn.fetch(wq("web_thread_memories"), thread_id, user.id)
    by_run: dict[Any, list[Any]] = defaultdict(list)
    for row in used:
        by_run[row["run_id"]].append(row)
    live = {r["id"] for r in runs if not is_done(r["status"], r["stop_at"])}
    status = {r["id"]: r["status"] for r in runs}
    items = [
        {
            "m": m,
            "used": by_run.get(m["run_id"], []) if m["role"] == "assistant" else [],
            "live": m["role"] == "user" and m["run_id"] in live,
            "status": status.get(m["run_id"]),
        }
        for m in messages
    ]
    return {"row": thread, "messages": items, "archived": made, "cut": len(messages) == SHOWN}


@router.post("/ui/threads")
async def new_thread(request: Request, rt: Rt, who: Owner) -> Response:
    title = (await form(request)).get("title", "").strip()[:200] or None
    assert who.user is not None
    thread_id = await rt.pool.fetchval(q("insert_thread"), who.user.id, title)
    return RedirectResponse(f"/ui/chat?thread={thread_id}", status_code=303)


@router.get("/ui/chat/{thread_id}/archive")
async def archive_state(thread_id: uuid.UUID, rt: Rt, who: Owner) -> JSONResponse:
    """Polled after closing a thread: is the archivist still at work, what has it written."""
    assert who.user is not None
    async with rt.pool.acquire() as conn:
        state = await conn.fetchrow(wq("web_thread_archive"), thread_id, who.user.id)
        if state is None:
            return JSONResponse({"error": {"code": "not_found", "message": "no such thread"}}, 404)
        made = await conn.fetch(wq("web_thread_memories"), thread_id, who.user.id)
    memories = [{"id": m["id"], "text": m["text"]} for m in made]
    body = {**dict(state), "memories": memories}
    return JSONResponse(jsonable_encoder(body), headers={"Cache-Control": "no-store"})
