"""JSON views of runs, shared by the API and the web UI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from maas.db.queries import q

STAGE_SPANS = {
    "queue": ("created_at", "analyzing_at"),
    "analyzer": ("analyzing_at", "analyzed_at"),
    "assembler": ("assembling_at", "ready_at"),
    "responder": ("responding_at", "completed_at"),
}


def _ms(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000, 2)


def timings_ms(run: Any) -> dict[str, float]:
    spans = {name: _ms(run[a], run[b]) for name, (a, b) in STAGE_SPANS.items()}
    end = run["completed_at"] or run["failed_at"] or run["ready_at"]
    spans["total"] = _ms(run["created_at"], end)
    return {k: v for k, v in spans.items() if v is not None}


def memory_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["memory_id"],
        "text": row["text"],
        "rank": row["rank"],
        "score": round(float(row["score"]), 4),
        "components": row["components"],
        "used": row["used"],
        "tokens": row["tokens"],
        "source_message_ids": list(row["source_message_ids"]),
        "source_thread_id": row["source_thread_id"],
        "event_time": row["event_time"],
    }


def traced_memory_view(row: Any) -> dict[str, Any]:
    """A run_trace_memories row: a memory deleted since is `deleted`, with no text."""
    return memory_view(row) | {"deleted": row["deleted"]}


async def trace_memories(conn: Any, run_id: Any, owner: Any) -> list[dict[str, Any]]:
    """Every candidate as the run saw it; a memory deleted since stays a row (`deleted`)."""
    return [traced_memory_view(r) for r in await conn.fetch(q("run_trace_memories"), run_id, owner)]


async def run_memories(
    conn: Any, run_id: Any, owner: Any, used_only: bool = False
) -> list[dict[str, Any]]:
    """Every candidate of the run, or only the packed ones (a chat answer shows no others: ~60
    rows instead of up to 200, each with its JSON components decoded)."""
    query = q("used_run_memories") if used_only else q("run_memories")
    return [memory_view(r) for r in await conn.fetch(query, run_id, owner)]


async def full_run(conn: Any, run: Any) -> dict[str, Any]:
    events = await conn.fetch(q("run_events"), run["id"], 0, run["user_id"])
    calls = await conn.fetch(q("run_llm_calls"), run["id"], run["user_id"])
    view = {k: run[k] for k in run.keys()}  # noqa: SIM118 (asyncpg Record)
    view["timings_ms"] = timings_ms(run)
    view["history"] = [dict(e) for e in events]
    view["memories"] = await trace_memories(conn, run["id"], run["user_id"])
    view["llm_calls"] = [dict(c) for c in calls]
    return view
