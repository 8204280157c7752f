"""Archivist: a finished (closed or idle) dialog becomes memories with provenance."""

from __future__ import annotations

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


async def archive(rt: Runtime, job: Job) -> Any:
    """Extract facts outside any transaction; return the commit that writes them at once."""
    params = await rt.params.active(job.thread_id)
    rows = await rt.pool.fetch(q("archive_messages"), job.thread_id, job.upto_message_id)
    lines = [
        TranscriptLine(i, r["role"], r["speaker"], r["content"], r["created_at"])
        for i, r in enumerate(rows, start=1)
    ]
    mode = await rt.pool.fetchval(q("user_llm_mode"), job.user_id)  # a mock test run's user
    model = rt.model_for(mode)
    facts = await model.extract_facts(lines, params, rt.recorder(job.user_id, job_id=job.id))
    mapped = [_memory(job, f, rows) for f in facts]
    memories = await _embed(rt.embedder_for(mode), [m for m in mapped if m is not None])
    threshold = str(params.num("archivist.dedupe_similarity"))

    async def commit(conn: Any) -> bool:
        await conn.execute(q("set_trgm_thresholds"), threshold, threshold)
        created = sum([await store.write(conn, m) for m in memories])
        done = await conn.fetchval(q("finish_archive_job"), job.id, job.lease_token, created)
        return done is not None

    return commit


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
