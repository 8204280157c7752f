"""The emulator's only way into MaaS: its public HTTP API, like any other client.

Every request of a synthetic user carries `X-MaaS-Client: emulator`, so MaaS records its runs
with client_type = emulator. Users are created with the admin key through POST /v1/admin/users.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

HEADER = {"X-MaaS-Client": "emulator"}


class MaasUnavailable(Exception):
    """A request MaaS did not answer usefully (network error, 5xx, an unexpected 4xx)."""


@dataclass(frozen=True)
class Reply:
    message: str  # what was sent
    run_id: str | None
    thread_id: str | None
    status: str
    answer: str


@dataclass(frozen=True)
class SyntheticUser:
    user_id: str
    key: str


class MaasClient:
    def __init__(self, http: httpx.AsyncClient, admin_key: str, archive_timeout_s: float = 120.0):
        self.http = http
        self.admin_key = admin_key
        self.archive_timeout_s = archive_timeout_s

    async def _request(self, method: str, url: str, key: str, body: Any = None) -> Any:
        """JSON of a 2xx reply; a 429 is waited out (Retry-After) a few times."""
        headers = {"Authorization": f"Bearer {key}", **HEADER}
        for _ in range(5):
            try:
                resp = await self.http.request(method, url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                raise MaasUnavailable(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
            if resp.status_code != 429:
                break
            await asyncio.sleep(min(float(resp.headers.get("Retry-After", "1")), 10.0))
        if resp.status_code >= 300:
            raise MaasUnavailable(f"{method} {url}: HTTP {resp.status_code}: {resp.text[:200]}")
        return resp.json() if resp.content else None

    async def create_user(self, name: str) -> SyntheticUser:
        data = await self._request("POST", "/v1/admin/users", self.admin_key, {"name": name})
        return SyntheticUser(data["user_id"], data["api_key"])

    async def me(self, user: SyntheticUser) -> dict[str, Any]:
        data: dict[str, Any] = await self._request("GET", "/v1/users/me", user.key)
        return data

    async def erase_user(self, user: SyntheticUser) -> None:
        """Erase a synthetic user and everything it holds (DELETE /v1/admin/users/{id})."""
        await self._request("DELETE", f"/v1/admin/users/{user.user_id}", self.admin_key)

    async def chat(self, user: SyntheticUser, message: str, thread_id: str | None) -> Reply:
        body = {"message": message, "thread_id": thread_id}
        data = await self._request("POST", "/v1/chat", user.key, body)
        answer = data.get("answer") or ""
        return Reply(message, data["run_id"], data["thread_id"], data["status"], answer)

    async def retrieved_sources(self, user: SyntheticUser, run_id: str) -> list[set[int]]:
        """Provenance (source message ids) of every memory the run retrieved, used or not."""
        run = await self._request("GET", f"/v1/runs/{run_id}", user.key)
        return [set(m["source_message_ids"]) for m in run["memories"]]

    async def context(self, user: SyntheticUser, query: str, max_tokens: int) -> dict[str, Any]:
        """POST /v1/context: every retrieved memory (rank, score, used, provenance) and the packed
        context at this budget."""
        body = {"query": query, "max_tokens": max_tokens}
        data: dict[str, Any] = await self._request("POST", "/v1/context", user.key, body)
        return data

    async def import_session(
        self, user: SyntheticUser, title: str, messages: list[dict[str, Any]]
    ) -> tuple[str, list[int]]:
        """A new thread holding existing dialog (speakers and times kept); its message ids."""
        made = await self._request("POST", "/v1/threads", user.key, {"title": title[:200]})
        thread_id = str(made["thread_id"])
        body = {"messages": messages}
        ids = await self._request("POST", f"/v1/threads/{thread_id}/messages", user.key, body)
        return thread_id, list(ids["message_ids"])

    async def close(self, user: SyntheticUser, thread_id: str) -> None:
        await self._request("POST", f"/v1/threads/{thread_id}/close", user.key)

    async def close_and_wait(self, user: SyntheticUser, thread_id: str) -> list[dict[str, Any]]:
        """Close the thread, wait until the archivist has made memories of all of it, and return
        its messages. Raises MaasUnavailable when archiving takes longer than the timeout."""
        await self.close(user, thread_id)
        return await self.archived(user, thread_id)

    async def archived(
        self, user: SyntheticUser, thread_id: str, timeout_s: float | None = None
    ) -> list[dict[str, Any]]:
        """Wait until the archivist has made memories of the whole (closed) thread."""
        waited = timeout_s or self.archive_timeout_s
        deadline = time.monotonic() + waited
        delay = 0.1
        while True:
            thread = await self._request("GET", f"/v1/threads/{thread_id}", user.key)
            messages: list[dict[str, Any]] = thread["messages"]
            if thread["archived_upto"] >= max((m["id"] for m in messages), default=0):
                return messages
            if time.monotonic() > deadline:
                raise MaasUnavailable(f"thread {thread_id} not archived in {waited}s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 1.0)
