"""Assembler: search the user's memories, rank them, pack the best under the token budget."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from maas.llm.embed import Embedder
from maas.llm.types import Analysis
from maas.memory.budget import Packed, pack
from maas.memory.diversity import diversify
from maas.memory.parts import MAX_PARTS, lead_with, people_parts
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


def sub_questions(analysis: Analysis, params: ParamSet) -> list[str]:
    """The analyzer's sub-questions worth a search each: two or more (one is the question), and
    only while parts lead the packing (retrieval.part_lead)."""
    parts = [p.strip() for p in analysis.parts if p.strip()][:MAX_PARTS]
    return parts if len(parts) >= 2 and int(params["retrieval.part_lead"]) > 0 else []


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
    asked = sub_questions(analysis, params)
    vectors = await _embed(embedder, [query, *asked], spans)
    with spans.span("search") as searching:
        terms = search_terms(analysis)
        found = await search(query, terms, vectors[0], params, analysis.entities, spans)
        searching.detail = {"candidates": len(found)}
    parts = [
        await _search_part(search, (n, part), vector, analysis, params, spans)
        for n, (part, vector) in enumerate(zip(asked, vectors[1:], strict=True), start=1)
    ]
    budget = max_tokens or int(params["context.max_tokens"])
    with spans.span("prioritise"):
        found = diversify(found, params.num("retrieval.diversity"), budget)
        parts = parts or people_parts(found, analysis.entities)
        found = lead_with(parts, found, int(params["retrieval.part_lead"]))
    with spans.span("pack") as packing:
        dates, speakers = params["context.include_dates"], params["context.group_speakers"]
        packed = pack(found, budget, bool(dates), token_encoding, bool(speakers))
        packing.detail = {"packed": len(packed.used_ids), "tokens": packed.tokens}
    return Assembled(found, packed, spans.as_json())


async def _search_part(
    search: Search,
    numbered: tuple[int, str],
    vector: list[float] | None,
    analysis: Analysis,
    params: ParamSet,
    spans: Spans,
) -> list[Candidate]:
    """Sub-question n's own search: its words, and the question's entities it names."""
    n, part = numbered
    names = [e for e in analysis.entities if e.lower() in part.lower()]
    with spans.span(f"search part {n}") as searching:
        found = await search(part, [e.lower() for e in names], vector, params, names, spans)
        searching.detail = {"candidates": len(found)}
    return found


async def _embed(
    embedder: Embedder | None, texts: list[str], spans: Spans
) -> list[list[float] | None]:
    """The embeddings of the query and its parts in one call (none without an embedder: the
    vector arm is off)."""
    if embedder is None:
        return [None] * len(texts)
    with spans.span("embed query"):
        return list(await embedder.embed(texts))
