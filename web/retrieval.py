"""The memory browser's search by meaning: the retrieval of POST /v1/context (the same hybrid
search, the parameters in force, the service's embedder) without making a run.

Its search terms come from the offline analyzer (keywords and names of the query): a search in
the browser never calls an LLM, so with an LLM configured its terms may differ slightly from a
run's, whose analyzer is the LLM."""

from __future__ import annotations

from typing import Any

from maas.agents.assembler import search_terms
from maas.llm.embed import Embedder
from maas.llm.offline import entities, keywords
from maas.llm.types import Analysis
from maas.memory.search import Candidate, search
from maas.runtime.context import Runtime


def _embedder(rt: Runtime) -> Embedder | None:
    """The embedder a run of the service's own mode gets (a remote one when configured)."""
    return rt.models.embedder_for(None)


async def by_meaning(rt: Runtime, user_id: Any, text: str) -> list[Candidate]:
    """Candidates best first, each with its score and its arms' values, as a run records them."""
    params = await rt.params.active(None)
    limit = int(params["llm.analyzer_max_keywords"])
    analysis = Analysis(keywords=keywords(text, limit)[:64], entities=entities(text)[:64])
    embedder = _embedder(rt)
    embedding = (await embedder.embed([text]))[0] if embedder else None
    async with rt.context_share.turn(user_id), rt.search_pool.acquire() as conn:
        return await search(
            conn, user_id, text, search_terms(analysis), embedding, params, names=analysis.entities
        )
