"""Each route once: how to ask (method, path, body, query, headers) and how to read the reply.
The sync and async clients send these the same way (maas/client/__init__.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from maas.api import models as m
from maas.api.chat import ChatIn, ContextIn
from maas.api.threads import ImportedMessage, ImportIn, ThreadIn

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[Any], T]
    body: BaseModel | None = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return None if self.body is None else self.body.model_dump(mode="json", exclude_none=True)


def chat(
    message: str, thread_id: uuid.UUID | str | None, wait: bool, idempotency_key: str | None
) -> Call[m.ChatReply]:
    """Always with an Idempotency-Key (a fresh one unless given): a retried POST replays the run
    instead of sending the message twice."""
    body = ChatIn(message=message, thread_id=_uuid(thread_id))
    key = idempotency_key or uuid.uuid4().hex
    params = {} if wait else {"wait": "false"}
    read = m.ChatReply.model_validate
    return Call("POST", "/v1/chat", read, body, params, {"Idempotency-Key": key})


def context(query: str, max_tokens: int | None) -> Call[m.ChatReply]:
    body = ContextIn(query=query, max_tokens=max_tokens)
    return Call("POST", "/v1/context", m.ChatReply.model_validate, body)


def run(run_id: uuid.UUID | str) -> Call[m.Run]:
    return Call("GET", f"/v1/runs/{_uuid(run_id)}", m.Run.model_validate)


def create_thread(title: str | None) -> Call[m.NewThread]:
    return Call("POST", "/v1/threads", m.NewThread.model_validate, ThreadIn(title=title))


def list_threads(limit: int) -> Call[m.ThreadList]:
    return Call("GET", "/v1/threads", m.ThreadList.model_validate, params={"limit": limit})


def thread(thread_id: uuid.UUID | str, after: int, limit: int) -> Call[m.Thread]:
    params = {"after": after, "limit": limit}
    return Call("GET", f"/v1/threads/{_uuid(thread_id)}", m.Thread.model_validate, params=params)


def close_thread(thread_id: uuid.UUID | str) -> Call[m.Closed]:
    return Call("POST", f"/v1/threads/{_uuid(thread_id)}/close", m.Closed.model_validate)


def import_messages(
    thread_id: uuid.UUID | str, messages: Iterable[ImportedMessage | dict[str, Any]]
) -> Call[m.Imported]:
    items = [ImportedMessage.model_validate(x) for x in messages]
    path = f"/v1/threads/{_uuid(thread_id)}/messages"
    return Call("POST", path, m.Imported.model_validate, ImportIn(messages=items))


def memories(
    query: str | None, limit: int, offset: int, include_closed: bool
) -> Call[m.MemoryList]:
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    params |= {"include_closed": "true"} if include_closed else {}
    params |= {"query": query} if query else {}
    return Call("GET", "/v1/memories", m.MemoryList.model_validate, params=params)


def delete_memory(memory_id: int) -> Call[m.Deleted]:
    return Call("DELETE", f"/v1/memories/{int(memory_id)}", m.Deleted.model_validate)


def export() -> Call[dict[str, Any]]:
    return Call("GET", "/v1/users/me/export", _dict)


def erase() -> Call[m.Erased]:
    return Call("DELETE", "/v1/users/me", m.Erased.model_validate)


def events_path(run_id: uuid.UUID | str) -> str:
    return f"/v1/runs/{_uuid(run_id)}/events"


def event_from(lines: list[str]) -> m.RunEvent | None:
    """One SSE event (its lines); None for the stream's `end` event or a comment."""
    kind = next((x[6:].strip() for x in lines if x.startswith("event:")), "message")
    data = "".join(x[5:].strip() for x in lines if x.startswith("data:"))
    if kind != "status" or not data:
        return None
    return m.RunEvent.model_validate(json.loads(data))


def is_end(lines: list[str]) -> bool:
    return any(x.startswith("event:") and x[6:].strip() == "end" for x in lines)


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _uuid(value: uuid.UUID | str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))
