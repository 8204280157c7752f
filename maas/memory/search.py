"""Hybrid retrieval: SQL finds candidates by three arms, Python combines the scores."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from maas.db.queries import q
from maas.llm.when import period
from maas.memory.trace import Detail, Spans
from maas.params import ParamSet


@dataclass(slots=True)  # ~200 per search: slots make them half as costly to build
class Candidate:
    id: int
    text: str
    importance: float
    event_time: datetime | None
    created_at: datetime
    source_message_ids: list[int]
    components: dict[str, float] = field(default_factory=dict)
    speaker: str | None = None
    score: float = 0.0
    source_thread_id: Any = None
    valid: bool = True  # not superseded (valid_to is null)
    line_tokens: int | None = None  # its packed line's tokens as stored (budget.line_cost)

    @property
    def when(self) -> datetime:
        return self.event_time or self.created_at


ARMS = ("bm25", "trgm", "vector")


async def search(
    conn: Any,
    user_id: Any,
    query: str,
    keywords: list[str],
    embedding: list[float] | None,
    params: ParamSet,
    now: datetime | None = None,
    names: list[str] | None = None,
    spans: Spans | None = None,
) -> list[Candidate]:
    """Candidates from every arm, fused by weighted reciprocal rank, best first. `names` are the
    people the query mentions: what they said gets `retrieval.w_speaker` more. `spans` gets the
    search statement's and the ranking's times (the run inspector's nested bars)."""
    spans = spans or Spans()
    together = siblings_in_search(params)
    args = statement_args(user_id, query, keywords, embedding, params)
    with spans.span("search statement") as statement:
        rows = await _search_rows(conn, args, params.num("retrieval.trgm_threshold"))
    with spans.span("rank") as ranking:
        hits = [_candidate(r) for r in rows if not r["sibling"]]
        kept = _ranked(hits, rows, params, now or datetime.now(UTC), (query, names or []), together)
        ranking.detail = {"kept": len(kept)}
    statement.detail = arm_counts(hits, args, len(rows) - len(hits) if together else None)
    if together or not links_after(params):
        return kept
    with spans.span("linked memories") as linking:
        linked = await with_siblings(conn, user_id, kept, params)
        linking.detail = {"added": len(linked) - len(kept)}
    return linked


def _ranked(
    hits: list[Candidate],
    rows: list[Any],
    params: ParamSet,
    now: datetime,
    asked: tuple[str, list[str]],
    together: bool,
) -> list[Candidate]:
    """Fused, the speaker and period bonuses added (`asked`: the query and the people it
    names), those under the floor dropped, best first; with `together`
    the siblings that came with the search follow their hits: those of kept candidates, and
    dropped candidates that are siblings of kept ones (as sibling_memories would return them: no
    arm scores)."""
    found = fuse(hits, params, now)
    query, names = asked
    prefer_speakers(found, names, params.num("retrieval.w_speaker"))
    prefer_period(found, query, now, params.num("retrieval.w_period"))
    floor = params.num("retrieval.min_score")
    kept = _best_first([c for c in found if c.score >= floor])
    if not together:
        return kept
    near = [_candidate(r) for r in rows if r["sibling"]]
    near += [replace(c, components={}, speaker=None) for c in found if c.score < floor and c.valid]
    return linked_siblings(kept, near, params.num("retrieval.sibling_decay"))


def arm_counts(hits: list[Candidate], args: tuple[Any, ...], siblings: int | None) -> Detail:
    """How many candidates each arm found (None: the arm was off: no trigram terms, no query
    embedding). The arms run inside one statement, so they have no times of their own. (One
    unrolled pass: ~200 candidates.)"""
    bm25 = trgm = vector = 0
    for c in hits:
        found = c.components
        if "bm25" in found:
            bm25 += 1
        if "trgm" in found:
            trgm += 1
        if "vector" in found:
            vector += 1
    counts: Detail = {
        "bm25": bm25,
        "trgm": trgm if args[2] else None,
        "vector": vector if args[3] is not None else None,
    }
    if siblings is not None:
        counts["siblings"] = siblings
    return counts


def statement_args(
    user_id: Any, query: str, keywords: list[str], embedding: list[float] | None, params: ParamSet
) -> tuple[Any, ...]:
    """search_memories' arguments ($1 … $10, memory.sql) for a query and its keywords."""
    return (
        user_id,
        " ".join([query, *keywords]),
        trigram_terms(keywords, params),
        embedding,
        int(params["retrieval.candidate_limit"]),
        bool(params["retrieval.include_superseded"]),
        params.num("retrieval.bm25_k1"),
        params.num("retrieval.bm25_b"),
        siblings_in_search(params),
        params.num("retrieval.w_context_terms"),
    )


def siblings_in_search(params: ParamSet) -> bool:
    """Siblings only (no neighbours): search_memories brings them in the same round trip."""
    return params.num("retrieval.sibling_decay") > 0 and params.num("retrieval.neighbor_decay") <= 0


def links_after(params: ParamSet) -> bool:
    """Whether with_siblings has anything to look up (siblings or neighbours on)."""
    return params.num("retrieval.sibling_decay") > 0 or params.num("retrieval.neighbor_decay") > 0


async def _search_rows(conn: Any, args: tuple[Any, ...], threshold: float) -> list[Any]:
    """search_memories. With trigram terms or an embedding it runs in a transaction that sets the
    trigram threshold and asks for a custom plan (search_settings); without either (lexical
    only, the default without embeddings) the generic plan is as good, and BEGIN, SET and COMMIT
    would be three more round trips."""
    if not args[2] and args[3] is None:
        return list(await conn.fetch(q("search_memories"), *args))
    async with conn.transaction():
        await conn.execute(q("search_settings"), str(threshold), str(threshold))
        return list(await conn.fetch(q("search_memories"), *args))


async def with_siblings(
    conn: Any, user_id: Any, ranked: list[Candidate], params: ParamSet
) -> list[Candidate]:
    """Small-to-big: a hit brings the other chunks of its turn (`retrieval.sibling_decay`) and
    the memories of the turn it answers (`retrieval.neighbor_decay`) right behind it, so a packed
    fragment can come with its context. Each keeps its own provenance."""
    sib, nbr = params.num("retrieval.sibling_decay"), params.num("retrieval.neighbor_decay")
    if not links_after(params) or not ranked:
        return ranked
    own = _best_hit(ranked)
    links = {i: (c, sib) for i, c in own.items()} if sib > 0 else {}
    if nbr > 0:
        for row in await conn.fetch(q("previous_messages"), list(own), user_id):
            if row["prev"] is not None and row["prev"] not in links:
                links[row["prev"]] = (own[row["id"]], nbr)
    rows = await conn.fetch(q("sibling_memories"), user_id, list(links), [c.id for c in ranked])
    return _best_first(_lifted(ranked, links) + [_linked(_candidate(r), links) for r in rows])


def linked_siblings(
    ranked: list[Candidate], near: list[Candidate], decay: float
) -> list[Candidate]:
    """with_siblings without neighbours, given every memory that shares a source message with a
    candidate: each that shares one with a ranked memory follows the best such hit."""
    if decay <= 0 or not ranked:
        return ranked
    links = {i: (c, decay) for i, c in _best_hit(ranked).items()}
    extra = [_linked(c, links) for c in near if any(i in links for i in c.source_message_ids)]
    return _best_first(_lifted(ranked, links) + extra)


def _lifted(ranked: list[Candidate], links: dict[int, tuple[Candidate, float]]) -> list[Candidate]:
    """A hit linked to a better hit scores at least what it would as that hit's linked memory:
    a chunk that also matched the query no longer ranks below its turn's chunks that did not
    (LoCoMo dev, replayed: answer-in-context @2000 0.699 -> 0.701, 2 multi-hop questions up,
    none down). The lifts are computed from the scores as ranked, then applied."""
    floors = {
        c.id: max(links[i][0].score * links[i][1] for i in linked)
        for c in ranked
        if (linked := [i for i in c.source_message_ids if i in links and links[i][0] is not c])
    }
    for c in ranked:
        c.score = max(c.score, floors.get(c.id, c.score))
    return ranked


def _best_hit(ranked: list[Candidate]) -> dict[int, Candidate]:
    """Each source message's best-ranked hit."""
    return {i: c for c in reversed(ranked) for i in c.source_message_ids}


def _best_first(cands: list[Candidate]) -> list[Candidate]:
    return sorted(cands, key=lambda c: (-c.score, -c.id))


def _linked(c: Candidate, links: dict[int, tuple[Candidate, float]]) -> Candidate:
    leader, decay = max(
        (links[i] for i in c.source_message_ids if i in links),
        key=lambda pair: pair[0].score * pair[1],
    )
    c.score = leader.score * decay
    c.components = {"linked_to": float(leader.id)}
    return c


def prefer_speakers(cands: list[Candidate], names: list[str], weight: float) -> None:
    wanted = {person(n) for n in names if n.strip()}
    if weight <= 0 or not wanted:
        return
    for c in cands:
        if c.speaker and person(c.speaker) in wanted:
            c.score += weight
            c.components["speaker"] = weight


def prefer_period(cands: list[Candidate], query: str, now: datetime, weight: float) -> None:
    """A question about a time ("in October 2023", "on 13 October 2023", "last May") prefers
    the memories whose event date lies in it (the date the archivist gave the fact)."""
    asked = period(query, now) if weight > 0 else None
    if asked is None:
        return
    start, end = asked
    for c in cands:
        if start <= c.when < end:
            c.score += weight
            c.components["period"] = weight


def person(text: str) -> str:
    """'Caroline's' and 'caroline' name the same person."""
    low = text.strip().lower()
    return low[:-2] if low.endswith(("'s", "’s")) else low


def trigram_terms(keywords: list[str], params: ParamSet) -> list[str]:
    """No terms means the trigram arm costs nothing when its weight is zero."""
    if params.num("retrieval.w_trgm") <= 0:
        return []
    return [k.lower() for k in keywords if len(k) >= 3]


def _candidate(row: Any) -> Candidate:
    components = {}  # the arms that found it (an unrolled loop: this runs ~200 times a search)
    if (bm25 := row["bm25"]) is not None:
        components["bm25"] = bm25
    if (trgm := row["trgm"]) is not None:
        components["trgm"] = trgm
    if (vector := row["vector"]) is not None:
        components["vector"] = vector
    return Candidate(
        id=row["id"],
        text=row["text"],
        importance=row["importance"],
        event_time=row["event_time"],
        created_at=row["created_at"],
        source_message_ids=row["source_message_ids"],  # a fresh list from asyncpg
        components=components,
        speaker=row["speaker"],
        source_thread_id=row["source_thread_id"],
        valid=row["valid"],
        line_tokens=row["line_tokens"],
    )


def fuse(cands: list[Candidate], p: ParamSet, now: datetime) -> list[Candidate]:
    """Weighted reciprocal rank fusion, scaled so rank 1 in one arm of weight 1 scores 1.0;
    recency and importance add small priors."""
    k = p.num("retrieval.rrf_k")
    weights = {
        "bm25": p.num("retrieval.w_bm25"),
        "trgm": p.num("retrieval.w_trgm"),
        "vector": p.num("retrieval.w_vector"),
    }
    for c in cands:
        c.score = 0.0
    for arm in ARMS:
        ranked = sorted((c for c in cands if arm in c.components), key=lambda c: -c.components[arm])
        for rank, c in enumerate(ranked, start=1):
            c.score += weights[arm] * (k + 1) / (k + rank)
    half_life = p.num("retrieval.recency_half_life_days")
    w_recency, w_importance = p.num("retrieval.w_recency"), p.num("retrieval.w_importance")
    for c in cands:
        age_days = max((now - c.when).total_seconds() / 86400, 0.0)
        recency = math.pow(0.5, age_days / half_life)
        c.components["recency"] = recency
        c.score += w_recency * recency
        c.score += w_importance * c.importance
    return cands
