"""Archivist: a piece of a finished (closed or idle) dialog becomes memories with provenance.

A plain function from the messages to the memories they hold: it reads and writes nothing. The
archive job's runner hands it one bounded slice per claim (maas/pipeline/stages.py) and commits
what it returns through the repository.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from maas.llm.embed import Embedder
from maas.llm.types import Fact, LanguageModel, Recorder, TranscriptLine
from maas.memory import store
from maas.params import ParamSet


@dataclass(frozen=True)
class Dialog:
    """Messages of one thread to archive, in order (each: id, role, speaker, content,
    created_at), and whose they are."""

    user_id: Any
    thread_id: Any
    messages: list[Mapping[str, Any]]


async def archive(
    model: LanguageModel,
    embedder: Embedder | None,
    dialog: Dialog,
    params: ParamSet,
    record: Recorder,
    deadline: float,
) -> list[store.NewMemory]:
    """The facts of the dialog as memories, embedded; the embedding stops at `deadline` (the
    event loop's clock) between batches."""
    rows = dialog.messages
    lines = [
        TranscriptLine(i, r["role"], r["speaker"], r["content"], r["created_at"])
        for i, r in enumerate(rows, start=1)
    ]
    facts = await model.extract_facts(lines, params, record) if lines else []
    mapped = [_memory(dialog, f) for f in facts]
    async with asyncio.timeout_at(deadline):
        return await _embed(embedder, [m for m in mapped if m is not None])


def _memory(dialog: Dialog, fact: Fact) -> store.NewMemory | None:
    """Map the small message numbers the model saw back to message ids; drop invented ones."""
    rows = dialog.messages
    sources = [rows[n - 1] for n in fact.source if 1 <= n <= len(rows)]
    if not sources and rows:
        sources = [rows[-1]]
    if not sources:
        return None
    return store.NewMemory(
        user_id=dialog.user_id,
        text=fact.text.strip(),
        kind=fact.kind,
        slot=fact.slot,
        importance=fact.importance,
        event_time=max(r["created_at"] for r in sources),
        source_message_ids=sorted({r["id"] for r in sources}),
        source_thread_id=dialog.thread_id,
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
