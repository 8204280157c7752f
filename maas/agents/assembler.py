"""Assembler: search the user's memories, rank them, pack the best under the token budget."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from maas.llm.embed import Embedder
from maas.llm.types import Analysis
from maas.memory.budget import Packed, pack
from maas.memory.search import Candidate
from maas.params import ParamSet

# (query, search terms, query embedding, parameters, people named) -> candidates, best first:
# the user's memory search (maas.memory.search), bound to the user by the caller.
Search = Callable[
    [str, list[str], list[float] | None, ParamSet, list[str]], Awaitable[list[Candidate]]
]


@dataclass(frozen=True)
class Assembled:
    """Every candidate in rank order, and what of it was packed into the context."""

    found: list[Candidate]
    packed: Packed


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
    embedding = (await embedder.embed([query]))[0] if embedder else None
    found = await search(query, search_terms(analysis), embedding, params, analysis.entities)
    budget = max_tokens or int(params["context.max_tokens"])
    packed = pack(found, budget, bool(params["context.include_dates"]), token_encoding)
    return Assembled(found, packed)
