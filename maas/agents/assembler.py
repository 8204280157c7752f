"""Assembler: search the user's memories, rank them, pack the best under the token budget."""

from __future__ import annotations

from typing import Any

import orjson

from maas.db.queries import q
from maas.llm.types import Analysis
from maas.memory.budget import Packed, pack
from maas.memory.search import Candidate, search
from maas.pipeline.claim import Claim, Next, StageCommit, next_args
from maas.runtime.context import Runtime


def search_terms(analysis: Analysis) -> list[str]:
    seen: dict[str, None] = {}
    for term in [*analysis.keywords, *analysis.entities]:
        seen.setdefault(term.strip().lower(), None)
    return [t for t in seen if t]


async def assemble(rt: Runtime, run: Claim) -> StageCommit:
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

    columns = _columns(found, packed)

    async def commit(conn: Any, nxt: Next | None) -> Any:
        head = (run.id, run.lease_token, packed.text, packed.tokens)
        return await conn.fetchrow(q("commit_assemble"), *head, *columns, *next_args(nxt))

    return commit


def _columns(found: list[Candidate], packed: Packed) -> list[Any]:
    return [
        [c.id for c in found],
        [c.score for c in found],
        orjson.dumps([{k: round(v, 4) for k, v in c.components.items()} for c in found]).decode(),
        [c.id in packed.used_ids for c in found],
        [packed.line_tokens.get(c.id, 0) for c in found],
    ]
