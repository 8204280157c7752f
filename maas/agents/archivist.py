"""Archivist: a finished (closed or idle) dialog becomes memories with provenance.

A job archives its range one bounded slice per claim (MAAS_ARCHIVE_SLICE_MESSAGES messages,
MAAS_ARCHIVE_SLICE_CHARS characters): however big an import, each attempt extracts, embeds and
writes a bounded amount under the stage deadline, and what it made is committed before the next
slice starts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from maas.db.queries import q
from maas.llm.embed import Embedder
from maas.llm.types import Fact, TranscriptLine
from maas.memory import store
from maas.runtime.context import Runtime


@dataclass(frozen=True)
class Job:
    id: int
    thread_id: Any
    user_id: Any
    upto_message_id: int
    attempts: int
    lease_token: Any

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Slice:
    """The messages a claim archives, and the thread's archived mark they start after."""

    mark: int
    rows: list[Any]

    @property
    def last(self) -> int | None:
        return self.rows[-1]["id"] if self.rows else None


async def read_slice(rt: Runtime, job: Job) -> Slice:
    s = rt.settings
    found = await rt.pool.fetch(
        q("archive_slice"),
        job.thread_id,
        job.upto_message_id,
        s.archive_slice_messages,
        s.archive_slice_chars,
    )
    mark = found[0]["mark"] if found else 0
    return Slice(mark, [r for r in found if r["id"] is not None])


async def archive(rt: Runtime, job: Job) -> Any:
    """Extract facts of the job's next slice outside any transaction; return the commit that
    writes them and moves the thread's mark at once. Embedding stops at the stage deadline."""
    deadline = asyncio.get_running_loop().time() + rt.settings.stage_deadline_s
    params = await rt.params.active(job.thread_id)
    part = await read_slice(rt, job)
    lines = [
        TranscriptLine(i, r["role"], r["speaker"], r["content"], r["created_at"])
        for i, r in enumerate(part.rows, start=1)
    ]
    mode = await rt.pool.fetchval(q("user_llm_mode"), job.user_id)  # a mock test run's user
    facts = await _extract(rt, job, mode, lines, params) if lines else []
    mapped = [_memory(job, f, part.rows) for f in facts]
    async with asyncio.timeout_at(deadline):
        memories = await _embed(rt.embedder_for(mode), [m for m in mapped if m is not None])
    threshold = str(params.num("archivist.dedupe_similarity"))

    async def commit(conn: Any) -> bool:
        await conn.execute(q("set_trgm_thresholds"), threshold, threshold)
        created = sum([await store.write(conn, m) for m in memories])
        finished = await conn.fetchval(
            q("finish_archive_slice"), job.id, job.lease_token, created, part.last, part.mark
        )
        return finished is not None

    return commit


async def _extract(
    rt: Runtime, job: Job, mode: str | None, lines: list[TranscriptLine], params: Any
) -> list[Fact]:
    model = rt.model_for(mode)
    return await model.extract_facts(lines, params, rt.recorder(job.user_id, job_id=job.id))


def _memory(job: Job, fact: Fact, rows: list[Any]) -> store.NewMemory | None:
    """Map the small message numbers the model saw back to message ids; drop invented ones."""
    sources = [rows[n - 1] for n in fact.source if 1 <= n <= len(rows)]
    if not sources and rows:
        sources = [rows[-1]]
    if not sources:
        return None
    return store.NewMemory(
        user_id=job.user_id,
        text=fact.text.strip(),
        kind=fact.kind,
        slot=fact.slot,
        importance=fact.importance,
        event_time=max(r["created_at"] for r in sources),
        source_message_ids=sorted({r["id"] for r in sources}),
        source_thread_id=job.thread_id,
    )


async def _embed(
    embedder: Embedder | None, memories: list[store.NewMemory]
) -> list[store.NewMemory]:
    if embedder is None or not memories:
        return memories
    vectors = await embedder.embed([m.text for m in memories])
    return [
        store.NewMemory(**{**m.__dict__, "embedding": v})
        for m, v in zip(memories, vectors, strict=True)
    ]
