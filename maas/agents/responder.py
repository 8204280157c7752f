"""Final Responder: answer from the packed memories and the recent thread history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maas.db.queries import q
from maas.llm.types import HistoryMessage, PackedMemory, Recorder, RespondInput
from maas.llm.when import day
from maas.pipeline.claim import Claim, Next
from maas.runtime.context import Runtime


async def respond(rt: Runtime, run: Claim, record: Recorder) -> Responded:
    params = run.param_set()
    data = await _inputs(rt, run, int(params["context.history_messages"]))
    data_dates = bool(params["context.include_dates"])
    if not data_dates:
        data.memories = [PackedMemory(m.text, None) for m in data.memories]
    answer = await rt.model_for(run.mode).respond(data, params, record)

    return Responded(run, answer)


@dataclass
class Responded:
    """The responder's commit (the last stage: it claims nothing). It keeps the finished run's
    row (get_run's columns), so the request that drove the run answers without reading it."""

    run: Claim
    answer: str
    row: Any = None

    async def __call__(self, conn: Any, nxt: Next | None, calls: str) -> Any:
        run = self.run
        args = (run.thread_id, run.user_id, run.id, run.lease_token, self.answer, calls)
        self.row = await conn.fetchrow(q("finish_respond"), *args)
        return self.row


async def _inputs(rt: Runtime, run: Claim, history_n: int) -> RespondInput:
    async with rt.pool.acquire() as conn:
        memories = list(run.memories) if run.memories is not None else await _packed(conn, run)
        history: list[Any] = run.history or []
        if run.history is None and run.thread_id is not None and history_n > 0:
            history = await conn.fetch(
                q("thread_history"), run.thread_id, run.message_id or 2**62, history_n
            )
    past = [HistoryMessage(_chat_role(h["role"]), h["content"]) for h in reversed(history)]
    return RespondInput(
        message=run.query, memories=memories, context=run.context_text or "", history=past
    )


async def _packed(conn: Any, run: Claim) -> list[PackedMemory]:
    """The memories the assembler packed, as it packed them (dated like the packer dates)."""
    rows = await conn.fetch(q("used_memories"), run.id)
    return [PackedMemory(r["text"], day(r["event_time"] or r["created_at"])) for r in rows]


def _chat_role(role: str) -> str:
    return "assistant" if role == "assistant" else "user"
