"""Writing memories: one per fact, near duplicates merged, changed facts supersede old ones."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from maas.db.queries import q
from maas.memory.budget import stored_line_tokens
from maas.memory.search import vector_text

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


async def write(conn: Any, mem: NewMemory) -> bool:
    """Insert or merge one memory inside the caller's transaction; True if a new row was made.

    Replays are harmless: the unique (user, fact_key) turns a second insert into a provenance
    union, and a near duplicate only gains provenance. A fact with a slot ("my city is X") is
    never merged by similarity, since a small edit is a change; a closed value said again later
    is reopened and closes the value it replaced.
    """
    key = fact_key(mem.text)
    known = await conn.fetchrow(q("memory_by_fact"), mem.user_id, key)
    if known is not None:
        await conn.execute(q("merge_provenance"), known["id"], mem.source_message_ids)
        await _maybe_reopen(conn, mem, known)
        return False
    if mem.slot is None:
        near = await conn.fetchrow(q("find_near_duplicate"), mem.user_id, mem.text)
        if near is not None:
            await conn.execute(q("merge_provenance"), near["id"], mem.source_message_ids)
            return False
    row = await conn.fetchrow(
        q("upsert_memory"),
        mem.user_id,
        mem.text,
        mem.kind,
        mem.slot,
        key,
        vector_text(mem.embedding),
        mem.importance,
        mem.event_time,
        mem.source_message_ids,
        mem.source_thread_id,
        stored_line_tokens(mem.text),
    )
    if row["created"] and mem.slot:
        await conn.fetch(q("supersede_slot"), mem.user_id, mem.slot, row["id"])
    return bool(row["created"])


async def _maybe_reopen(conn: Any, mem: NewMemory, known: Any) -> None:
    closed_at = known["valid_to"]
    if closed_at is None or mem.slot is None or mem.event_time is None:
        return
    if mem.event_time > closed_at and await conn.fetchval(
        q("reopen_memory"), known["id"], mem.event_time
    ):
        await conn.fetch(q("supersede_slot"), mem.user_id, mem.slot, known["id"])
