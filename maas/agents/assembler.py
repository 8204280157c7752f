"""Assembler: search the user's memories, rank them, pack the best under the token budget."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from maas.llm.embed import Embedder
from maas.llm.types import Analysis
from maas.memory.budget import Packed, pack
from maas.memory.search import Candidate
from maas.memory.trace import Spans
from maas.params import ParamSet

# (query, search terms, query embedding, parameters, people named, the stage's spans) ->
# candidates, best first: the user's memory search (maas.memory.search), bound to the user by the
# caller, which times its parts in the spans.
Search = Callable[
    [str, list[str], list[float] | None, ParamSet, list[str], Spans],
    Awaitable[list[Candidate]],
]


@dataclass(frozen=True)
class Assembled:
    """Every candidate in rank order, and what of it was packed into the context."""

    found: list[Candidate]
    packed: Packed
    spans: list[dict[str, Any]] = field(default_factory=list)  # what the time went to (JSON)


def search_terms(analysis: Analysis) -> list[str]:
    seen: dict[str, None] = {}
    for term in [*analysis.keywords, *analysis.entities]:
        seen.setdefault(term.strip().lower(), None)
    return [t for t in seen if t]


async def assemble(
    search: Search,
    embedder: Embedder | None,
    query: str,
    analysis: Analysis,
    params: ParamSet,
    max_tokens: int | None,
    token_encoding: str,
) -> Assembled:
    spans = Spans()
    embedding = await _embed(embedder, query, spans)
    with spans.span("search") as searching:
        terms = search_terms(analysis)
        found = await search(query, terms, embedding, params, analysis.entities, spans)
        searching.detail = {"candidates": len(found)}
    budget = max_tokens or int(params["context.max_tokens"])
    with spans.span("pack") as packing:
        packed = pack(found, budget, bool(params["context.include_dates"]), token_encoding)
        packing.detail = {"packed": len(packed.used_ids), "tokens": packed.tokens}
    return Assembled(found, packed, spans.as_json())


async def _embed(embedder: Embedder | None, query: str, spans: Spans) -> list[float] | None:
    """The query's embedding (none without an embedder: the vector arm is off)."""
    if embedder is None:
        return None
    with spans.span("embed query"):
        return (await embedder.embed([query]))[0]
