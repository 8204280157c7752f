"""Writing memories: one per fact, near duplicates merged, changed facts supersede old ones."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from maas.db.queries import q
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
    union, and a near duplicate only gains provenance.
    """
    key = fact_key(mem.text)
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
    )
    if row["created"] and mem.slot:
        await conn.fetch(q("supersede_slot"), mem.user_id, mem.slot, row["id"])
    return bool(row["created"])
