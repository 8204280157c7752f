"""Final Responder: answer from the packed memories and the recent thread history."""

from __future__ import annotations

from typing import Any

from maas.db.queries import q
from maas.llm.types import HistoryMessage, PackedMemory, RespondInput
from maas.llm.when import day
from maas.pipeline.claim import Claim, Next, StageCommit
from maas.runtime.context import Runtime


async def respond(rt: Runtime, run: Claim) -> StageCommit:
    params = run.param_set()
    data = await _inputs(rt, run, int(params["context.history_messages"]))
    data_dates = bool(params["context.include_dates"])
    if not data_dates:
        data.memories = [PackedMemory(m.text, None) for m in data.memories]
    answer = await rt.model_for(run.mode).respond(data, params, rt.recorder(run.user_id, run.id))

    async def commit(conn: Any, nxt: Next | None) -> Any:  # the last stage: nothing to claim
        args = (run.thread_id, run.user_id, run.id, run.lease_token, answer)
        return await conn.fetchrow(q("finish_respond"), *args)

    return commit


async def _inputs(rt: Runtime, run: Claim, history_n: int) -> RespondInput:
    async with rt.pool.acquire() as conn:
        rows = await conn.fetch(q("used_memories"), run.id)
        history = []
        if run.thread_id is not None and history_n > 0:
            history = await conn.fetch(
                q("thread_history"), run.thread_id, run.message_id or 2**62, history_n
            )
    memories = [PackedMemory(r["text"], day(r["event_time"] or r["created_at"])) for r in rows]
    past = [HistoryMessage(_chat_role(h["role"]), h["content"]) for h in reversed(history)]
    return RespondInput(
        message=run.query, memories=memories, context=run.context_text or "", history=past
    )


def _chat_role(role: str) -> str:
    return "assistant" if role == "assistant" else "user"
