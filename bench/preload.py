"""Bulk preload for the performance harness: a user's imported history (threads, messages) and
the memories the offline archivist makes of it, in three statements and one COPY.

Going through the archivist would take minutes at 100k memories; the rows are the same: each
message's text goes through the offline archivist's own `facts_from`, and the memory gets the
columns `store.write` would give it (fact key, kind, importance, event time = message time,
provenance, source thread). The `search` tsvector is a generated column and `memory_stats` is
kept by its trigger, so both come out exactly as in production. Not reproduced: near-duplicate
merging and slot supersession (the slot sentences are left out, so every row is valid).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.queries import bq
from maas.db.pool import connect
from maas.llm.offline import facts_from
from maas.llm.types import TranscriptLine
from maas.memory.budget import stored_line_tokens
from maas.memory.store import fact_key
from maas.params import ParamSet, defaults

SESSION_TURNS = 50  # messages per imported thread
MEMORY_COLUMNS = (
    "user_id", "text", "kind", "slot", "fact_key", "importance", "event_time", "valid_from",
    "source_message_ids", "source_thread_id", "line_tokens",
)  # fmt: skip
# Utility statements cannot be PREPAREd, so they stay out of the named .sql blocks.
VACUUM = (
    "VACUUM (ANALYZE) maas.memories, maas.memory_terms, maas.messages, maas.threads,"
    " maas.memory_stats"
)


@dataclass(frozen=True)
class Loaded:
    memories: int
    messages: int
    seconds: float


def turn_times(count: int, seed: int) -> list[datetime]:
    """Increasing message times over the last ~4 years, a few hours apart."""
    rng = random.Random(seed)  # noqa: S311 (not for security)
    at = datetime.now(UTC) - timedelta(days=4 * 365)
    step = 4 * 365 * 86400 / max(count, 1)
    out = []
    for _ in range(count):
        at += timedelta(seconds=rng.uniform(0.2, 1.8) * step)
        out.append(at)
    return out


def memory_rows(
    user_id: uuid.UUID,
    threads: Sequence[uuid.UUID],
    message_ids: Sequence[int],
    texts: Sequence[str],
    times: Sequence[datetime],
    params: ParamSet,
) -> list[tuple[Any, ...]]:
    """The offline archivist's memories of each message (one per turn, slot sentences left out)."""
    rows: list[tuple[Any, ...]] = []
    seen: set[str] = set()
    for thread, mid, text, at in zip(threads, message_ids, texts, times, strict=True):
        for fact in facts_from(TranscriptLine(1, "user", None, text, at), None, params):
            key = fact_key(fact.text)
            if fact.slot is not None or key in seen:
                continue
            seen.add(key)
            rows.append(
                (user_id, fact.text, fact.kind, None, key, fact.importance, at, at, [mid], thread,
                 stored_line_tokens(fact.text))
            )  # fmt: skip
    return rows


async def preload_history(
    dsn: str, user_id: str, texts: Sequence[str], seed: int, limit: int
) -> Loaded:
    """One user message per text in threads of SESSION_TURNS, then at most `limit` of their
    memories by COPY (a message that only states a slot fact has no turn memory)."""
    started = time.perf_counter()
    uid = uuid.UUID(user_id)
    times = turn_times(len(texts), seed)
    thread_ids = [uuid.uuid4() for _ in range(0, len(texts), SESSION_TURNS)]
    per_message = [thread_ids[i // SESSION_TURNS] for i in range(len(texts))]
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            firsts = times[::SESSION_TURNS]
            titles = [f"imported session {i + 1}" for i in range(len(thread_ids))]
            await conn.execute(bq("bench_insert_threads"), uid, thread_ids, titles, firsts)
            found = await conn.fetch(bq("bench_insert_messages"), uid, per_message, texts, times)
            ids = sorted(r["id"] for r in found)
            rows = memory_rows(uid, per_message, ids, texts, times, defaults())[:limit]
            await conn.copy_records_to_table(
                "memories", schema_name="maas", columns=MEMORY_COLUMNS, records=rows
            )
            await conn.execute(bq("bench_mark_archived"), uid)
        await conn.execute(VACUUM)
    finally:
        await conn.close()
    return Loaded(len(rows), len(texts), time.perf_counter() - started)
