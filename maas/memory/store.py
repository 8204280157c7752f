"""Writing memories: one per fact, near duplicates merged, changed facts supersede old ones."""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from maas.db.queries import q
from maas.memory.budget import stored_line_tokens

_NON_WORD = re.compile(r"[^\w]+")


def fact_key(text: str) -> str:
    """Same words in the same order = same fact, whatever the case and punctuation."""
    normal = _NON_WORD.sub(" ", text.lower()).strip()
    return hashlib.md5(normal.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class NewMemory:
    user_id: Any
    text: str
    kind: str
    slot: str | None
    importance: float
    event_time: datetime | None
    source_message_ids: list[int]
    source_thread_id: Any
    embedding: list[float] | None = None
    context: str | None = None  # words of the turn it answers, searched beside its own


async def write_all(
    conn: Any, user_id: Any, memories: list[NewMemory], semantic_min: float | None = None
) -> int:
    """Several memories of one user in the caller's transaction (store.write each); returns how
    many were new. The user's statistics row is locked first: every insert locks it (its
    statement trigger), a merge locks the memory it merges into, so two writers that merged and
    inserted in opposite orders deadlocked (each holding what the other waited for). Taken
    first, it queues a user's writers before they lock anything else."""
    if not memories:
        return 0
    await conn.execute(q("lock_memory_stats"), user_id)
    return sum([await write(conn, m, semantic_min) for m in memories])


async def write(conn: Any, mem: NewMemory, semantic_min: float | None = None) -> bool:
    """Insert or merge one memory inside the caller's transaction; True if a new row was made.

    Replays are harmless: the unique (user, fact_key) turns a second insert into a provenance
    union, and a near duplicate only gains provenance: near in its trigrams (the threshold set in
    the transaction), or in meaning, its embedding's cosine similarity to a valid memory's at
    least `semantic_min` (archivist.semantic_dedup; None = off). A fact with a slot ("my city is
    X") is never merged by similarity, either way round, since a small edit is a change: it
    supersedes the slot's old value instead; a closed value said again later is reopened and
    closes the value it replaced.
    """
    key = fact_key(mem.text)
    known = await conn.fetchrow(q("memory_by_fact"), mem.user_id, key)
    if known is not None:
        await conn.execute(q("merge_provenance"), known["id"], mem.source_message_ids)
        await _maybe_reopen(conn, mem, known)
        return False
    if mem.slot is None:
        near = await near_duplicate(conn, mem, semantic_min)
        if near is not None:
            await conn.execute(q("merge_provenance"), near, mem.source_message_ids)
            return False
    row = await conn.fetchrow(
        q("upsert_memory"),
        mem.user_id,
        mem.text,
        mem.kind,
        mem.slot,
        key,
        mem.embedding,
        mem.importance,
        mem.event_time,
        mem.source_message_ids,
        mem.source_thread_id,
        stored_line_tokens(mem.text),
        mem.context,
    )
    if row["created"] and mem.slot:
        await conn.fetch(q("supersede_slot"), mem.user_id, mem.slot, row["id"])
    return bool(row["created"])


async def near_duplicate(conn: Any, mem: NewMemory, semantic_min: float | None) -> int | None:
    """The valid memory `mem` repeats: by trigrams first, else by meaning (see write)."""
    near = await conn.fetchval(q("find_near_duplicate"), mem.user_id, mem.text)
    if near is None and semantic_min is not None and mem.embedding is not None:
        found = await conn.fetchrow(
            q("find_semantic_duplicate"), mem.user_id, mem.embedding, semantic_min
        )
        same = found is not None and not adds_detail(mem.text, found["text"])
        near = found["id"] if same else None
    return None if near is None else int(near)


# A detail an embedding hardly sees: a name, a place, a day (a capitalised word) or a number.
# "I went to the gym on Tuesday" is at cosine 0.97 from "... on Monday" (all-MiniLM-L6-v2),
# above paraphrases such as "I'm a baker in Porto" / "I work as a baker in Porto" (0.96).
_DETAIL = re.compile(r"\b(?:[A-Z][\w-]+|[\w-]*\d[\w-]*)")
_WORD = re.compile(r"[\w-]+")


def adds_detail(new: str, old: str) -> bool:
    """Does `new` carry a capitalised word or a number that `old` does not (any case)?"""
    known = {w.lower() for w in _WORD.findall(old)}
    return any(w.lower() not in known for w in _DETAIL.findall(new))


async def _maybe_reopen(conn: Any, mem: NewMemory, known: Any) -> None:
    closed_at = known["valid_to"]
    if closed_at is None or mem.slot is None or mem.event_time is None:
        return
    if mem.event_time > closed_at and await conn.fetchval(
        q("reopen_memory"), known["id"], mem.event_time
    ):
        await conn.fetch(q("supersede_slot"), mem.user_id, mem.slot, known["id"])


BACKFILL_BATCH = 500  # memories counted per round trip (~10 ms of tiktoken, off the event loop)


async def backfill_line_tokens(pool: Any, stop: asyncio.Event, batch: int = BACKFILL_BATCH) -> int:
    """Store the line count of every memory that has none (a database migrated across 0041), so
    the packer reads it instead of counting it once per process; returns how many were stored.
    One walk of the table in id order, a batch at a time, counted on a thread; a memory written
    meanwhile already has its count."""
    after, stored = 0, 0
    while not stop.is_set():
        rows = await pool.fetch(q("memories_without_line_tokens"), after, batch)
        if not rows:
            return stored
        ids = [r["id"] for r in rows]
        counts = await asyncio.to_thread(_line_counts, [r["text"] for r in rows])
        stored += int((await pool.execute(q("set_line_tokens"), ids, counts)).split()[-1])
        after = ids[-1]
    return stored


def _line_counts(texts: list[str]) -> list[int]:
    return [stored_line_tokens(t) for t in texts]
