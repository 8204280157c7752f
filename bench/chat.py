"""One chat message through POST /v1/chat, timed, as an Outcome (the benchmarks' unit of work)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

THREAD_LEN = 10  # a client starts a new thread after this many messages


@dataclass(frozen=True)
class Outcome:
    run_id: str | None
    thread_id: str | None
    latency_ms: float
    error: str | None = None
    memories_used: int = 0


def _json_body(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {"error": resp.text[:200]}
    return body if isinstance(body, dict) else {"error": str(body)[:200]}


async def send_chat(http: httpx.AsyncClient, message: str, thread_id: str | None) -> Outcome:
    payload: dict[str, Any] = {"message": message}
    if thread_id is not None:
        payload["thread_id"] = thread_id
    t0 = time.perf_counter()
    try:
        resp = await http.post("/v1/chat", json=payload)
    except httpx.HTTPError as exc:
        return Outcome(None, thread_id, ms_since(t0), f"{type(exc).__name__}: {exc}")
    return chat_outcome(resp.status_code, _json_body(resp), thread_id, ms_since(t0))


def chat_outcome(status: int, body: dict[str, Any], thread_id: str | None, ms: float) -> Outcome:
    """A /v1/chat reply as an Outcome: an error unless 200 and COMPLETED."""
    run_id, new_thread = body.get("run_id"), body.get("thread_id") or thread_id
    if status != 200 or body.get("status") != "COMPLETED":
        error = f"HTTP {status} {body.get('status')}: {body.get('error')}"
        return Outcome(run_id, new_thread, ms, error)
    return Outcome(run_id, new_thread, ms, None, len(body.get("memories_used") or []))


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000
