"""Archivist: a piece of a dialog (a turn, or a closed or idle thread) becomes memories.

A plain function from the messages to the memories they hold: it reads and writes nothing. The
archive job's runner hands it one bounded slice per claim (maas/pipeline/stages.py) and commits
what it returns through the repository.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from maas.llm.embed import Embedder, normalize
from maas.llm.offline import OFFLINE_LABEL
from maas.llm.types import Fact, LanguageModel, Recorder, TranscriptLine
from maas.memory import store
from maas.params import ParamSet


@dataclass(frozen=True)
class Dialog:
    """Messages of one thread to archive, in order (each: id, role, speaker, content,
    created_at), and whose they are; `before`: the thread's message just before them (a chat's
    per-turn slice starts with the user's answer to the reply before it), context only."""

    user_id: Any
    thread_id: Any
    messages: list[Mapping[str, Any]]
    before: Mapping[str, Any] | None = None


async def archive(
    model: LanguageModel,
    embedder: Embedder | None,
    dialog: Dialog,
    params: ParamSet,
    record: Recorder,
    deadline: float,
    keep: Callable[[store.NewMemory], bool] | None = None,
) -> list[store.NewMemory]:
    """The facts of the dialog as memories, embedded; the embedding stops at `deadline` (the
    event loop's clock) between batches. `keep`: which memories to return (the others are not
    embedded: a dialog pass drops what per-turn archiving already stored)."""
    rows = dialog.messages
    lines = [
        TranscriptLine(i, r["role"], r["speaker"], r["content"], r["created_at"])
        for i, r in enumerate(rows, start=1)
    ]
    facts = await model.extract_facts(lines, params, record) if lines else []
    made = (_memory(dialog, f) for f in facts)
    mapped = [m for m in made if m is not None and (keep is None or keep(m))]
    mix = params.num("archivist.context_mix")
    words = int(params["archivist.context_terms"])
    before: list[Mapping[str, Any] | None] = [None] * len(mapped)
    if mix > 0 or words > 0:
        before = _turns_before(rows, mapped, dialog.before)
    if words > 0:
        mapped = [_with_terms(m, b, words) for m, b in zip(mapped, before, strict=True)]
    if mix <= 0:
        before = [None] * len(mapped)
    async with asyncio.timeout_at(deadline):
        return await _embed(embedder, mapped, before, mix)


def _with_terms(
    memory: store.NewMemory, before: Mapping[str, Any] | None, words: int
) -> store.NewMemory:
    """The first `words` words of the turn before, searched by BM25 beside the memory's own (at
    retrieval.w_context_terms of a term): "turtles" finds the reply "They make me think of
    strength" in the full-text arm too."""
    if before is None:
        return memory
    return replace(memory, context=" ".join(str(before["content"]).split()[:words]))


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


CONTEXT_WORDS = 40  # of the turn before, embedded (its last 40 or last 24 words did no better)


def _turns_before(
    rows: list[Mapping[str, Any]],
    memories: list[store.NewMemory],
    first: Mapping[str, Any] | None = None,
) -> list[Mapping[str, Any] | None]:
    """Per memory, the message before its first source when another speaker said it (what a
    reply answers: "They make me think of strength" is about the turtles just named): in this
    slice, or `first` (the thread's message before the slice) for the slice's first message.
    None when there is none, or when it is an offline answer (MaaS quoting memories back)."""
    index = {r["id"]: i for i, r in enumerate(rows)}
    found: list[Mapping[str, Any] | None] = []
    for m in memories:
        i = index.get(m.source_message_ids[0])
        prev = None if i is None else rows[i - 1] if i > 0 else first
        if prev is None or i is None or _who(prev) == _who(rows[i]) or _quotes_memories(prev):
            prev = None
        found.append(prev)
    return found


def _quotes_memories(row: Mapping[str, Any]) -> bool:
    """An offline reply lists the memories a question found: context of nothing said."""
    return row["role"] == "assistant" and str(row["content"]).startswith(OFFLINE_LABEL)


def _who(row: Mapping[str, Any]) -> tuple[Any, Any]:
    return row["role"], row["speaker"]


async def _embed(
    embedder: Embedder | None,
    memories: list[store.NewMemory],
    before: list[Mapping[str, Any] | None],
    mix: float,
) -> list[store.NewMemory]:
    """Each memory's vector; with `mix` > 0 moved toward the turn before it (weight `mix`), so a
    reply is found by what it answers. The memory's text, its tokens and its words are its own.
    The memories' texts and the turns' before them go to the embedder in one call, so they are
    batched by length together."""
    if embedder is None or not memories:
        return memories
    wanted = list({r["id"]: r for r in before if r is not None}.values())
    texts = [m.text for m in memories] + [_context_text(r) for r in wanted]
    vectors = await embedder.embed(texts)
    own = vectors[: len(memories)]
    context = {r["id"]: v for r, v in zip(wanted, vectors[len(memories) :], strict=True)}
    return [
        store.NewMemory(
            **{**m.__dict__, "embedding": _mixed(v, None if b is None else context[b["id"]], mix)}
        )
        for m, v, b in zip(memories, own, before, strict=True)
    ]


def _context_text(row: Mapping[str, Any]) -> str:
    """A turn before, as embedded: its first CONTEXT_WORDS words. (Summing the vectors of that
    turn's own memories instead saves the embedding, ingest 24 -> 42 turns/s on LoCoMo dev, but
    loses the questions a turn asks, which hold no fact: budget recall @500 0.815 -> 0.799.)"""
    return " ".join(str(row["content"]).split()[:CONTEXT_WORDS])


def _mixed(own: list[float], context: list[float] | None, mix: float) -> list[float]:
    """normalise(own + mix * context); own alone without a context."""
    if context is None:
        return own
    return normalize([a + mix * c for a, c in zip(own, context, strict=True)])
