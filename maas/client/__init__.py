"""The MaaS Python SDK: `MaaS` (sync) and `AsyncMaaS` (asyncio), on httpx.

    from maas.client import MaaS
    with MaaS("http://127.0.0.1:8000", api_key="maas_...") as maas:
        reply = maas.chat("My cat Miso is allergic to chicken.")
        print(maas.chat("What is my cat allergic to?").answer)

Replies are the API's own pydantic models (maas.api.models); a refused request raises a typed
MaaSError (maas.client.errors) carrying the API's error code and message. 429 and 503 are
retried (max_retries times) after the server's Retry-After, capped at max_retry_wait_s.
Documented in docs/sdk.md.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, TypeVar

import httpx

from maas.api import models
from maas.api.threads import ImportedMessage
from maas.client import _calls as calls
from maas.client.errors import ConnectionFailed, MaaSError, error_for

__all__ = ["AsyncMaaS", "MaaS", "MaaSError", "models"]
T = TypeVar("T")
RETRIED = frozenset({429, 503})
Id = uuid.UUID | str


class _Base:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 130.0,  # above the server's chat wait (MAAS_CHAT_WAIT_S, 120 s)
        max_retries: int = 3,
        max_retry_wait_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}", "X-MaaS-Client": "client"}
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_retry_wait_s = max_retry_wait_s

    def _wait_s(self, resp: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retrying `resp`, or None: not retried."""
        if resp.status_code not in RETRIED or attempt >= self.max_retries:
            return None
        try:
            after = float(resp.headers.get("Retry-After", ""))
        except ValueError:
            after = 0.5 * 2**attempt
        return min(max(after, 0.0), self.max_retry_wait_s)

    @staticmethod
    def _read(call: calls.Call[T], resp: httpx.Response) -> T:
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
        if resp.status_code >= 400:
            raise error_for(resp.status_code, body)
        return call.read(body)


class MaaS(_Base):
    """Synchronous client. Use as a context manager, or call close()."""

    def __init__(self, base_url: str, api_key: str, **options: Any) -> None:
        transport = options.pop("transport", None)
        super().__init__(base_url, api_key, **options)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=self.headers,
            timeout=self.timeout_s,
            transport=transport,
        )

    def __enter__(self) -> MaaS:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: calls.Call[T]) -> T:
        for attempt in range(self.max_retries + 1):
            try:
                resp = self._http.request(
                    call.method, call.path, json=call.json(), params=call.params,
                    headers=call.headers,
                )  # fmt: skip
            except httpx.TransportError as exc:
                raise ConnectionFailed(0, "connection", str(exc)) from exc
            wait = self._wait_s(resp, attempt)
            if wait is None:
                return self._read(call, resp)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def chat(
        self,
        message: str,
        *,
        thread_id: Id | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> models.ChatReply:
        """Answer with memories; with wait=False the reply has only run_id (follow events())."""
        return self._send(calls.chat(message, thread_id, wait, idempotency_key))

    def events(self, run_id: Id) -> Iterator[models.RunEvent]:
        """The run's status changes as they happen; ends when the run does."""
        with self._http.stream("GET", calls.events_path(run_id)) as resp:
            if resp.status_code >= 400:
                resp.read()
                self._read(calls.run(run_id), resp)
            lines: list[str] = []
            for line in resp.iter_lines():
                if line:
                    lines.append(line)
                    continue
                if calls.is_end(lines):
                    return
                event, lines = calls.event_from(lines), []
                if event is not None:
                    yield event

    def run(self, run_id: Id) -> models.Run:
        return self._send(calls.run(run_id))

    def context(self, query: str, *, max_tokens: int | None = None) -> models.ChatReply:
        """The packed context and every candidate memory, for a client with its own LLM."""
        return self._send(calls.context(query, max_tokens))

    def create_thread(self, title: str | None = None) -> models.NewThread:
        return self._send(calls.create_thread(title))

    def threads(self, *, limit: int = 50) -> models.ThreadList:
        return self._send(calls.list_threads(limit))

    def thread(self, thread_id: Id, *, after: int = 0, limit: int = 1000) -> models.Thread:
        return self._send(calls.thread(thread_id, after, limit))

    def close_thread(self, thread_id: Id) -> models.Closed:
        return self._send(calls.close_thread(thread_id))

    def import_messages(
        self, thread_id: Id, messages: Iterable[ImportedMessage | dict[str, Any]]
    ) -> models.Imported:
        return self._send(calls.import_messages(thread_id, messages))

    def memories(
        self, *, limit: int = 50, offset: int = 0, include_closed: bool = False
    ) -> models.MemoryList:
        return self._send(calls.memories(None, limit, offset, include_closed))

    def search_memories(
        self, query: str | None, *, limit: int = 50, offset: int = 0
    ) -> models.MemoryList:
        """Memories matching `query` (full text or substring), newest first."""
        return self._send(calls.memories(query, limit, offset, False))

    def delete_memory(self, memory_id: int) -> models.Deleted:
        return self._send(calls.delete_memory(memory_id))

    def export(self) -> dict[str, Any]:
        return self._send(calls.export())

    def erase(self) -> models.Erased:
        """Erase the caller's account and all its data; the key stops working."""
        return self._send(calls.erase())


class AsyncMaaS(_Base):
    """Asynchronous client: the same methods as MaaS, awaited."""

    def __init__(self, base_url: str, api_key: str, **options: Any) -> None:
        transport = options.pop("transport", None)
        super().__init__(base_url, api_key, **options)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=self.headers,
            timeout=self.timeout_s,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncMaaS:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, call: calls.Call[T]) -> T:
        for attempt in range(self.max_retries + 1):
            try:
                resp = await self._http.request(
                    call.method, call.path, json=call.json(), params=call.params,
                    headers=call.headers,
                )  # fmt: skip
            except httpx.TransportError as exc:
                raise ConnectionFailed(0, "connection", str(exc)) from exc
            wait = self._wait_s(resp, attempt)
            if wait is None:
                return self._read(call, resp)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def chat(
        self,
        message: str,
        *,
        thread_id: Id | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
    ) -> models.ChatReply:
        return await self._send(calls.chat(message, thread_id, wait, idempotency_key))

    async def events(self, run_id: Id) -> AsyncIterator[models.RunEvent]:
        async with self._http.stream("GET", calls.events_path(run_id)) as resp:
            if resp.status_code >= 400:
                await resp.aread()
                self._read(calls.run(run_id), resp)
            lines: list[str] = []
            async for line in resp.aiter_lines():
                if line:
                    lines.append(line)
                    continue
                if calls.is_end(lines):
                    return
                event, lines = calls.event_from(lines), []
                if event is not None:
                    yield event

    async def run(self, run_id: Id) -> models.Run:
        return await self._send(calls.run(run_id))

    async def context(self, query: str, *, max_tokens: int | None = None) -> models.ChatReply:
        return await self._send(calls.context(query, max_tokens))

    async def create_thread(self, title: str | None = None) -> models.NewThread:
        return await self._send(calls.create_thread(title))

    async def threads(self, *, limit: int = 50) -> models.ThreadList:
        return await self._send(calls.list_threads(limit))

    async def thread(self, thread_id: Id, *, after: int = 0, limit: int = 1000) -> models.Thread:
        return await self._send(calls.thread(thread_id, after, limit))

    async def close_thread(self, thread_id: Id) -> models.Closed:
        return await self._send(calls.close_thread(thread_id))

    async def import_messages(
        self, thread_id: Id, messages: Iterable[ImportedMessage | dict[str, Any]]
    ) -> models.Imported:
        return await self._send(calls.import_messages(thread_id, messages))

    async def memories(
        self, *, limit: int = 50, offset: int = 0, include_closed: bool = False
    ) -> models.MemoryList:
        return await self._send(calls.memories(None, limit, offset, include_closed))

    async def search_memories(
        self, query: str | None, *, limit: int = 50, offset: int = 0
    ) -> models.MemoryList:
        return await self._send(calls.memories(query, limit, offset, False))

    async def delete_memory(self, memory_id: int) -> models.Deleted:
        return await self._send(calls.delete_memory(memory_id))

    async def export(self) -> dict[str, Any]:
        return await self._send(calls.export())

    async def erase(self) -> models.Erased:
        return await self._send(calls.erase())
