"""The caller's own account: who am I, export everything, erase everything."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder

from maas.api.deps import User, current_user, get_runtime
from maas.db.queries import q
from maas.runtime.context import Runtime

router = APIRouter(prefix="/v1/users", tags=["users"])
Rt = Annotated[Runtime, Depends(get_runtime)]
Caller = Annotated[User, Depends(current_user)]

# Export key -> named query; the keys are the table names, so a test can check every table.
EXPORTS = {
    "threads": "export_threads",
    "messages": "export_messages",
    "pipeline_runs": "export_runs",
    "run_events": "export_run_events",
    "run_memories": "export_run_memories",
    "memories": "export_memories",
    "llm_calls": "export_llm_calls",
    "archive_jobs": "export_archive_jobs",
    "claim_turns": "export_claim_turns",
    "memory_stats": "export_memory_stats",
    "memory_terms": "export_memory_terms",
    "test_runs": "export_test_runs",
    "test_run_users": "export_test_run_users",
    "sessions": "export_sessions",
}


async def footprint(conn: Any, user_id: uuid.UUID) -> dict[str, int]:
    row = await conn.fetchrow(q("user_footprint"), user_id)
    return {k: int(v) for k, v in row.items()}


ERASE_ATTEMPTS = 5


async def erase(rt: Runtime, user_id: uuid.UUID) -> dict[str, int]:
    """Delete the user and everything it owns in one transaction; returns what was there.

    Erasing again finds nothing and deletes nothing: the call is repeatable — which also makes it
    safe to retry when the cascade deadlocks with the user's own in-flight work (a stage commit
    locks its run, then memories; the cascade reaches memories before runs). Postgres aborts one
    side; the pipeline retries its own, and we retry ours.
    """
    for attempt in range(1, ERASE_ATTEMPTS + 1):
        try:
            return await _erase_once(rt, user_id)
        except asyncpg.DeadlockDetectedError:
            if attempt == ERASE_ATTEMPTS:
                raise
            await asyncio.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


async def _erase_once(rt: Runtime, user_id: uuid.UUID) -> dict[str, int]:
    async with rt.pool.acquire() as conn, conn.transaction():
        counts = await footprint(conn, user_id)
        await conn.execute(q("erase_user"), user_id)
        await conn.execute(q("erase_user_stats"), user_id)
    return counts


async def export(rt: Runtime, user_id: uuid.UUID) -> dict[str, Any]:
    async with rt.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        data: dict[str, Any] = {"user": await conn.fetchval(q("export_user"), user_id)}
        for key, query in EXPORTS.items():
            data[key] = [r[0] for r in await conn.fetch(q(query), user_id)]
    return data


@router.get("/me")
async def me(user: Caller) -> dict[str, str]:
    return {"user_id": str(user.id), "name": user.name}


@router.get("/me/export")
async def export_me(rt: Rt, user: Caller) -> Any:
    """Everything stored about the caller, as JSON: account, threads, messages, runs with their
    events and retrieved memories, memories, LLM calls, archive jobs."""
    return jsonable_encoder(await export(rt, user.id))


@router.delete("/me")
async def erase_me(rt: Rt, user: Caller) -> dict[str, Any]:
    """Erase the caller and all its data. The key stops working at once."""
    return {"user_id": str(user.id), "erased": await erase(rt, user.id)}
