"""Assembler: search the user's memories, rank them, pack the best under the token budget."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import orjson

from maas.db.queries import q
from maas.llm.types import Analysis, Recorder
from maas.memory.budget import Packed, pack
from maas.memory.search import Candidate, search
from maas.pipeline.claim import Claim, Next, next_args
from maas.runtime.context import Runtime


def search_terms(analysis: Analysis) -> list[str]:
    seen: dict[str, None] = {}
    for term in [*analysis.keywords, *analysis.entities]:
        seen.setdefault(term.strip().lower(), None)
    return [t for t in seen if t]


async def assemble(rt: Runtime, run: Claim, record: Recorder) -> Assembled:
    """(`record` logs inferences; the assembler makes none.)"""
    params = run.param_set()
    analysis = Analysis.model_validate(run.analyzer_output or {})
    terms = search_terms(analysis)
    embedder = rt.embedder_for(run.mode)
    embedding = (await embedder.embed([run.query]))[0] if embedder else None
    async with (rt.search_pool or rt.pool).acquire() as conn:
        found = await search(
            conn, run.user_id, run.query, terms, embedding, params, names=analysis.entities
        )
    budget = run.max_tokens or int(params["context.max_tokens"])
    packed = pack(found, budget, bool(params["context.include_dates"]), rt.settings.token_encoding)
    return Assembled(run, found, packed)


@dataclass
class Assembled:
    """The assembler's commit (one statement, migration 0019); it also knows what it wrote, so
    the request that drove the run can answer without reading it back (express lane)."""

    run: Claim
    found: list[Candidate]
    packed: Packed

    async def __call__(self, conn: Any, nxt: Next | None, calls: str) -> Any:
        run, packed = self.run, self.packed
        head = (run.id, run.lease_token, packed.text, packed.tokens)
        columns = _columns(self.found, packed, self.components)
        history = int(run.param_set()["context.history_messages"])  # what the responder reads
        tail = (*next_args(nxt), run.user_id, calls, history)
        return await conn.fetchrow(q("commit_assemble"), *head, *columns, *tail)

    @cached_property
    def components(self) -> list[dict[str, float]]:
        """Each candidate's components as stored (written, and returned in the reply)."""
        return [_components(c) for c in self.found]

    def rows(self, used_only: bool) -> list[dict[str, Any]]:
        """The run's memories as the run_memories query returns them: scores as stored
        (float32), components as stored."""
        used, tokens = self.packed.used_ids, self.packed.line_tokens
        scores = array("f", [c.score for c in self.found]).tolist()
        found = zip(self.found, scores, self.components, strict=True)
        return [
            {
                "memory_id": c.id,
                "rank": rank,
                "score": score,
                "components": components,
                "used": c.id in used,
                "tokens": tokens.get(c.id, 0),
                "text": c.text,
                "source_message_ids": c.source_message_ids,
                "source_thread_id": c.source_thread_id,
                "event_time": c.event_time,
            }
            for rank, (c, score, components) in enumerate(found, start=1)
            if c.id in used or not used_only
        ]


def _components(c: Candidate) -> dict[str, float]:
    """Rounded, in jsonb's key order, as a reader gets them back."""
    values = c.components
    return {k: round(values[k], 4) for k in _jsonb_order(tuple(values))}


@lru_cache(maxsize=256)
def _jsonb_order(keys: tuple[str, ...]) -> tuple[str, ...]:
    """jsonb keeps an object's keys shorter first, then bytewise (a handful of key sets)."""
    return tuple(sorted(keys, key=lambda k: (len(k.encode()), k.encode())))


def _columns(
    found: list[Candidate], packed: Packed, components: list[dict[str, float]]
) -> list[Any]:
    return [
        [c.id for c in found],
        [c.score for c in found],
        orjson.dumps(components).decode(),
        [c.id in packed.used_ids for c in found],
        [packed.line_tokens.get(c.id, 0) for c in found],
    ]
