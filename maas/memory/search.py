"""Hybrid retrieval: SQL finds candidates by three arms, Python combines the scores."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from maas.db.queries import q
from maas.params import ParamSet


@dataclass
class Candidate:
    id: int
    text: str
    importance: float
    event_time: datetime | None
    created_at: datetime
    source_message_ids: list[int]
    components: dict[str, float] = field(default_factory=dict)
    score: float = 0.0

    @property
    def when(self) -> datetime:
        return self.event_time or self.created_at


def websearch_query(keywords: list[str]) -> str:
    """OR of the keywords in websearch syntax, which never raises on odd input."""
    cleaned = [k.replace('"', " ").replace("-", " ").strip() for k in keywords]
    return " or ".join(k for k in cleaned if k)


async def search(
    conn: Any,
    user_id: Any,
    keywords: list[str],
    embedding: list[float] | None,
    params: ParamSet,
    now: datetime | None = None,
) -> list[Candidate]:
    threshold = params.num("retrieval.trgm_threshold")
    vector = vector_text(embedding)
    async with conn.transaction():
        await conn.execute(q("set_trgm_thresholds"), str(threshold), str(threshold))
        rows = await conn.fetch(
            q("search_memories"),
            user_id,
            websearch_query(keywords),
            [k.lower() for k in keywords if len(k) >= 3],
            vector,
            int(params["retrieval.candidate_limit"]),
            bool(params["retrieval.include_superseded"]),
        )
    ranked = [score(_candidate(r), params, now or datetime.now(UTC)) for r in rows]
    kept = [c for c in ranked if c.score >= params.num("retrieval.min_score")]
    return sorted(kept, key=lambda c: (-c.score, -c.id))


def _candidate(row: Any) -> Candidate:
    return Candidate(
        id=row["id"],
        text=row["text"],
        importance=row["importance"],
        event_time=row["event_time"],
        created_at=row["created_at"],
        source_message_ids=list(row["source_message_ids"]),
        components={"fts": row["fts"], "trgm": row["trgm"], "vector": row["vector"]},
    )


def score(c: Candidate, p: ParamSet, now: datetime) -> Candidate:
    age_days = max((now - c.when).total_seconds() / 86400, 0.0)
    recency = math.pow(0.5, age_days / p.num("retrieval.recency_half_life_days"))
    c.components["recency"] = recency
    c.components["importance"] = c.importance
    c.score = (
        p.num("retrieval.w_fts") * c.components["fts"]
        + p.num("retrieval.w_trgm") * c.components["trgm"]
        + p.num("retrieval.w_vector") * c.components["vector"]
        + p.num("retrieval.w_recency") * recency
        + p.num("retrieval.w_importance") * c.importance
    )
    return c


def vector_text(embedding: list[float] | None) -> str | None:
    if embedding is None:
        return None
    return "[" + ",".join(f"{x:.6f}" for x in embedding) + "]"
