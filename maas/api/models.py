"""The API's replies as pydantic models: the OpenAPI schema documents them and the Python SDK
(maas.client) parses replies with them. Unknown fields are kept (extra="allow"), so a newer
server never breaks an older client."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class Reply(BaseModel):
    model_config = ConfigDict(extra="allow")


class RetrievedMemory(Reply):
    """A memory a run retrieved: its score, whether it was packed, and its provenance."""

    id: int
    text: str
    rank: int | None = None
    score: float
    components: Any = None
    used: bool
    tokens: int | None = None
    source_message_ids: list[int]
    source_thread_id: uuid.UUID | None = None
    event_time: datetime | None = None


class TracedMemory(RetrievedMemory):
    """A memory as a run's trace keeps it (GET /v1/runs/{id}): one deleted since keeps its row,
    `deleted` true, with no text (erased) and no provenance."""

    text: str | None = None  # type: ignore[assignment]
    deleted: bool = False


class ChatReply(Reply):
    """POST /v1/chat (and /v1/context, which adds the packed context and every candidate); with
    wait=false only run_id, thread_id and status (NEW)."""

    run_id: uuid.UUID
    thread_id: uuid.UUID | None = None
    status: str
    mode: str | None = None
    answer: str | None = None
    error: str | None = None
    timings_ms: dict[str, float] = {}
    memories_used: list[RetrievedMemory] = []
    context: str | None = None
    context_tokens: int | None = None
    max_tokens: int | None = None
    memories: list[RetrievedMemory] = []


class RunEvent(Reply):
    """One status change of a run (GET /v1/runs/{id}/events)."""

    id: int
    status: str
    attempt: int
    error: str | None = None
    at: datetime


class Run(Reply):
    """GET /v1/runs/{id}: the run inspector's data (memories, LLM calls, history, timings)."""

    id: uuid.UUID
    thread_id: uuid.UUID | None = None
    status: str
    mode: str
    client_type: str
    query: str
    answer: str | None = None
    error: str | None = None
    timings_ms: dict[str, float] = {}
    history: list[RunEvent] = []
    memories: list[TracedMemory] = []
    llm_calls: list[dict[str, Any]] = []
    stage_spans: dict[str, list[dict[str, Any]]] = {}  # what a stage's time went to, by stage


class NewThread(Reply):
    thread_id: uuid.UUID
    title: str | None = None


class ThreadSummary(Reply):
    id: uuid.UUID
    title: str | None = None
    closed_at: datetime | None = None
    created_at: datetime
    last_message_at: datetime
    messages: int


class ThreadList(Reply):
    threads: list[ThreadSummary]


class Message(Reply):
    id: int
    role: str
    speaker: str | None = None
    content: str
    run_id: uuid.UUID | None = None
    created_at: datetime


class Thread(Reply):
    """GET /v1/threads/{id}: the thread and a page of its messages (`next_after` continues)."""

    id: uuid.UUID
    title: str | None = None
    closed_at: datetime | None = None
    archived_upto: int
    created_at: datetime
    last_message_at: datetime
    messages: list[Message]
    next_after: int | None = None


class Imported(Reply):
    thread_id: uuid.UUID
    message_ids: list[int]


class Closed(Reply):
    thread_id: uuid.UUID
    closed: bool
    archive_job_id: int | None = None


class Memory(Reply):
    """A stored memory with its validity and provenance (GET /v1/memories)."""

    id: int
    text: str
    kind: str | None = None
    slot: str | None = None
    importance: float | None = None
    event_time: datetime | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    superseded_by: int | None = None
    source_message_ids: list[int]
    source_thread_id: uuid.UUID | None = None
    created_at: datetime
    sources: list[dict[str, Any]] = []


class MemoryList(Reply):
    memories: list[Memory]
    limit: int
    offset: int


class Deleted(Reply):
    deleted: int


class Erased(Reply):
    user_id: uuid.UUID
    erased: dict[str, int]
