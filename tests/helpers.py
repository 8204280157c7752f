"""Small polling helpers for tests (bounded: they fail instead of hanging)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import httpx


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    # Every 50 ms: some conditions are moments (runs mid-stage, a cycle experimenting). A check
    # that calls the API needs a service whose rate limit allows 20 requests a second (the
    # selflearn fixtures turn it off: tests/selflearn/conftest.py).
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(0.05)


async def close_and_archive(client: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    """Close a thread and wait until the archivist has made memories from it."""
    resp = await client.post(f"/v1/threads/{thread_id}/close")
    assert resp.status_code == 200, resp.text

    async def archived() -> list[dict[str, Any]]:
        thread = (await client.get(f"/v1/threads/{thread_id}")).json()
        last = max(m["id"] for m in thread["messages"])
        if thread["archived_upto"] < last:
            return []
        memories: list[dict[str, Any]] = (await client.get("/v1/memories?limit=500")).json()[
            "memories"
        ]
        return memories or [{"none": True}]

    return await eventually(archived)


async def turn_archived(client: httpx.AsyncClient, thread_id: str) -> None:
    """Wait until per-turn archiving has archived every message of an open thread."""

    async def done() -> bool:
        thread = (await client.get(f"/v1/threads/{thread_id}")).json()
        return bool(thread["archived_upto"] >= max(m["id"] for m in thread["messages"]))

    await eventually(done)


def _encoding(frame: FrameType | None) -> bool:
    while frame is not None:
        code = frame.f_code
        if code.co_name == "encode" and "sentence_transformers" in code.co_filename:
            return True
        frame = frame.f_back
    return False


def encoding_threads() -> int:
    """Threads of this process inside the local model's encode right now."""
    return sum(_encoding(frame) for frame in sys._current_frames().values())
