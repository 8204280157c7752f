"""`maas seed`: load demo threads for the demo user and let the archivist make memories."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from maas.app import create_app
from maas.credentials import credentials_path, hash_key
from maas.db.queries import q
from maas.pipeline.repo import RunRepository
from maas.settings import Settings


def default_file() -> Path:
    packaged = Path(__file__).resolve().parent / "_seeds" / "demo.json"
    return (
        packaged
        if packaged.exists()
        else Path(__file__).resolve().parents[1] / "seeds" / "demo.json"
    )


async def load_demo(settings: Settings, file: Path | None = None) -> dict[str, Any]:
    data = json.loads((file or default_file()).read_text())
    app = create_app(settings)  # the service as `maas serve` builds it, without extensions
    async with app.router.lifespan_context(app):
        rt = app.state.service.runtime
        user_id, key = await _demo_user(rt.pool, settings)
        repo = app.state.service.repo
        jobs = [await _thread(rt.pool, repo, user_id, t) for t in data["threads"]]
        rt.signals.on_archive()
        await _wait_jobs(rt.pool, [j for j in jobs if j is not None])
        count = await rt.pool.fetchval(q("count_user_memories"), user_id)
        return {"user_id": str(user_id), **key, "threads": len(jobs), "memories": count}


async def _demo_user(pool: Any, settings: Settings) -> tuple[Any, dict[str, str]]:
    """The demo user the service's start made (credentials.json keeps its key)."""
    path = credentials_path(settings.data_dir)
    key = json.loads(path.read_text())["demo_user_key"]
    row = await pool.fetchrow(q("user_by_key_hash"), hash_key(key))
    return row["id"], {"key_stored_in": str(path)}


async def _thread(
    pool: Any, repo: RunRepository, user_id: Any, thread: dict[str, Any]
) -> int | None:
    times = [datetime.fromisoformat(m["created_at"]) for m in thread["messages"]]
    async with pool.acquire() as conn, conn.transaction():
        thread_id = await conn.fetchval(q("seed_thread"), user_id, thread["title"], times[0])
        for msg, at in zip(thread["messages"], times, strict=True):
            await conn.execute(
                q("insert_message"),
                thread_id,
                user_id,
                msg["role"],
                msg.get("speaker"),
                msg["text"],
                at,
            )
        job: int | None = await repo.queue_archive(conn, thread_id, user_id, "import")
        return job


async def _wait_jobs(pool: Any, jobs: list[int], timeout: float = 60.0) -> None:
    for _ in range(int(timeout * 10)):
        pending = await pool.fetchval(q("pending_archive_jobs"), jobs)
        if pending == 0:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("archivist did not finish the demo threads")
