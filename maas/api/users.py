"""The caller's own account: who am I, export everything, erase everything."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import asyncpg
from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

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


SPOOL_BYTES = 1 << 20  # written to the file a megabyte at a time, on a thread
EXPORT_BATCH = 500  # rows a cursor fetch


async def export(rt: Runtime, user_id: uuid.UUID) -> Path:
    """Everything stored about the user as one JSON object, in a temporary file for the caller
    to send (export_me: opened, unlinked, streamed). Postgres writes each row's JSON text; here
    the rows are only joined, a batch at a time, so the event loop never holds or encodes the
    whole export (one user's 232 MB export had held it for 40 s), and the database connection
    is released before the client starts reading. One snapshot (repeatable read) for every
    table."""
    fd, name = tempfile.mkstemp(prefix="maas-export-", suffix=".json")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            spool = _Spool(out)
            async with rt.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
                user = await conn.fetchval(q("export_user"), user_id)
                await spool.add(f'{{"user": {user or "null"}')
                for key, query in EXPORTS.items():
                    await spool.add(f', "{key}": [')
                    cursor = conn.cursor(q(query), user_id, prefetch=EXPORT_BATCH)
                    first = True
                    async for row in cursor:
                        await spool.add(row[0] if first else ", " + row[0])
                        first = False
                    await spool.add("]")
            await spool.add("}")
            await spool.flush()
    except BaseException:
        await asyncio.to_thread(path.unlink, True)
        raise
    return path


class _Spool:
    def __init__(self, out: Any) -> None:
        self.out = out
        self.parts: list[str] = []
        self.size = 0

    async def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= SPOOL_BYTES:
            await self.flush()

    async def flush(self) -> None:
        chunk, self.parts, self.size = "".join(self.parts), [], 0
        await asyncio.to_thread(self.out.write, chunk)


@router.get("/me")
async def me(user: Caller) -> dict[str, str]:
    return {"user_id": str(user.id), "name": user.name}


@router.get("/me/export")
async def export_me(rt: Rt, user: Caller) -> StreamingResponse:
    """Everything stored about the caller, as JSON: account, threads, messages, runs with their
    events and retrieved memories, memories, LLM calls, archive jobs."""
    path = await export(rt, user.id)
    spooled, size = await asyncio.to_thread(_open_and_unlink, path)
    headers = {"Content-Length": str(size)}
    return StreamingResponse(_chunks(spooled), media_type="application/json", headers=headers)


def _open_and_unlink(path: Path) -> tuple[BinaryIO, int]:
    """The spooled export, open, its name already gone: a client that leaves mid-way leaves no
    file behind (its space is freed when the file is closed)."""
    spooled = path.open("rb")
    path.unlink()
    return spooled, os.fstat(spooled.fileno()).st_size


async def _chunks(spooled: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(spooled.read, SPOOL_BYTES):
            yield chunk
    finally:
        spooled.close()


@router.delete("/me")
async def erase_me(rt: Rt, user: Caller) -> dict[str, Any]:
    """Erase the caller and all its data. The key stops working at once."""
    return {"user_id": str(user.id), "erased": await erase(rt, user.id)}
