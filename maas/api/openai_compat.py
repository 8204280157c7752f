"""An OpenAI-compatible endpoint with memory: POST /v1/chat/completions and GET /v1/models.

Any OpenAI Chat Completions client points its base URL at MaaS and sends a MaaS user key as its
API key. The last user message becomes a chat run like POST /v1/chat's (analyzer, assembler,
responder: the user's memories quoted as data in the system prompt, the configured LLM or the
offline extractive answer), the turn is archived like any other, and the run shows in the run
inspector. The reply is in OpenAI's shape, streamed as SSE chunks with `stream: true`.

Thread mapping (docs/api.md): the `X-MaaS-Thread` header names one of the caller's threads; else
the OpenAI `user` field maps each end user to one thread of the caller; else the conversation's
opening (its system messages and first user message) names its thread, so a client that resends
the whole conversation each turn stays in one thread and a new conversation gets a new one.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from maas.api.context import ApiContext
from maas.api.deps import User, caller_key, current_user, get_api, get_runtime
from maas.api.inputs import HARD_MAX_CHARS, Text, within
from maas.db.queries import q
from maas.errors import UNKNOWN_KEY, BadRequest, Gone, MaasError, NotFound, Unauthorized
from maas.pipeline.status import is_done
from maas.pipeline.submit import ChatRequest, Submitted
from maas.runtime.context import Runtime

router = APIRouter(prefix="/v1", tags=["openai"])
Rt = Annotated[Runtime, Depends(get_runtime)]
Api = Annotated[ApiContext, Depends(get_api)]
CallerKey = Annotated[str, Depends(caller_key)]
Caller = Annotated[User, Depends(current_user)]
ThreadHeader = Annotated[str | None, Header(alias="X-MaaS-Thread", max_length=100)]
# The namespace of the thread ids this endpoint derives (uuid5): fixed, so a mapping is stable.
THREADS = uuid.UUID("5b0c6f3e-6a63-4c59-9d55-0b9c1d7e4a17")
OFFLINE_MODEL = "maas-offline"


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(max_length=40)
    text: Text | None = Field(default=None, max_length=HARD_MAX_CHARS)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, ...: accepted, not used
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: (
        Annotated[Text, Field(max_length=HARD_MAX_CHARS)]
        | Annotated[list[ContentPart], Field(max_length=100)]
        | None
    ) = None


class CompletionIn(BaseModel):
    """OpenAI's request; sampling options (temperature, max_tokens, ...) are accepted and not
    used: the answer's settings are MaaS's parameters (IMPACTS.md)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    user: str | None = Field(default=None, max_length=200)


class RunFailed(MaasError):
    status_code = 502
    code = "run_failed"


class RunTimeout(MaasError):
    status_code = 504
    code = "timeout"


def text_of(message: ChatMessage) -> str:
    if isinstance(message.content, list):
        return "\n".join(p.text for p in message.content if p.type == "text" and p.text)
    return message.content or ""


def last_user_text(messages: list[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user" and text_of(message).strip():
            return text_of(message)
    raise BadRequest("messages: no user message with text (the last one is what MaaS answers)")


def opening_digest(messages: list[ChatMessage]) -> str:
    """The conversation's opening: its messages up to and including the first user message."""
    opening: list[list[str]] = []
    for message in messages:
        opening.append([message.role, text_of(message)])
        if message.role == "user":
            break
    return hashlib.sha256(json.dumps(opening).encode()).hexdigest()


def derived_thread(user_id: uuid.UUID, body: CompletionIn) -> uuid.UUID:
    """The rule of the module docstring, without the header; the caller's id is part of the name."""
    if body.user:
        return uuid.uuid5(THREADS, f"{user_id}\x00user\x00{body.user}")
    return uuid.uuid5(THREADS, f"{user_id}\x00opening\x00{opening_digest(body.messages)}")


async def thread_for(
    rt: Runtime, user_id: uuid.UUID, body: CompletionIn, header: str | None
) -> uuid.UUID:
    if header is not None:
        try:
            return uuid.UUID(header)
        except ValueError:
            raise BadRequest("X-MaaS-Thread: not a thread id (a UUID)") from None
    thread_id = derived_thread(user_id, body)
    title = last_user_text(body.messages).strip().splitlines()[0][:80]
    await rt.pool.execute(q("ensure_thread"), thread_id, user_id, title)
    return thread_id


def model_name(rt: Runtime) -> str:
    return OFFLINE_MODEL if rt.settings.offline else rt.settings.llm_model


@router.get("/models")
async def models(rt: Rt, _user: Caller) -> dict[str, Any]:
    """The one model MaaS answers with (the configured LLM, or `maas-offline`)."""
    return {"object": "list", "data": [_model(rt)]}


@router.get("/models/{model_id}")
async def model(model_id: str, rt: Rt, _user: Caller) -> dict[str, Any]:
    if model_id != model_name(rt):
        raise NotFound(f"model {model_id!r} not found: this MaaS answers with {model_name(rt)!r}")
    return _model(rt)


def _model(rt: Runtime) -> dict[str, Any]:
    return {"id": model_name(rt), "object": "model", "created": 0, "owned_by": "maas"}


@router.post("/chat/completions", response_model=None)
async def completions(
    body: CompletionIn, api: Api, key: CallerKey, thread: ThreadHeader = None
) -> JSONResponse | StreamingResponse:
    """OpenAI Chat Completions with the caller's memories (see the module docstring)."""
    rt = api.runtime
    message = last_user_text(body.messages)
    within(message, rt.settings.max_message_chars, "messages")
    user_id = await rt.pool.fetchval(q("user_by_key_hash"), key)
    if user_id is None:
        raise Unauthorized(UNKNOWN_KEY)
    thread_id = await thread_for(rt, user_id, body, thread)
    run = await _finished(api, ChatRequest(key, message, thread_id, client_type="openai"))
    usage = await rt.pool.fetchrow(q("run_token_usage"), run["id"], user_id)
    reply = Completion(run, model_name(rt), usage["prompt"], usage["completion"])
    headers = reply.headers()
    if body.stream:
        return StreamingResponse(reply.chunks(), media_type="text/event-stream", headers=headers)
    return JSONResponse(reply.body(), headers=headers)


async def _finished(api: ApiContext, req: ChatRequest) -> Any:
    """Drive the run (express lane) or wait for the workers; the finished run row."""
    sub: Submitted = await api.lanes.drive(req)
    run = sub.run_row
    if run is None or not is_done(run["status"], run["stop_at"]):
        await api.lanes.wait(sub.run_id, api.runtime.settings.chat_wait_s)
        run = await api.runtime.pool.fetchrow(q("get_run"), sub.run_id, sub.user_id)
    if run is None:
        raise Gone(f"run {sub.run_id} no longer exists: its account was erased while it ran")
    if run["status"] == "FAILED":
        raise RunFailed(f"run {run['id']} failed: {run['error']}")
    if not is_done(run["status"], run["stop_at"]):
        raise RunTimeout(f"run {run['id']} is still running: GET /v1/runs/{run['id']}")
    return run


_PIECES = re.compile(r"\S+\s*|\s+")


class Completion:
    """A finished run in OpenAI's shapes: one object, or SSE chunks ending in [DONE]."""

    def __init__(self, run: Any, model: str, prompt: int, completion: int) -> None:
        self.run = run
        self.model = model
        self.id = f"chatcmpl-{run['id'].hex}"
        self.created = int(run["created_at"].timestamp())
        self.usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def headers(self) -> dict[str, str]:
        run = self.run
        return {
            "X-MaaS-Run-Id": str(run["id"]),
            "X-MaaS-Thread-Id": str(run["thread_id"]),
            "X-MaaS-Mode": run["mode"],
        }

    def _base(self, kind: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": f"maas-{self.run['mode']}",
        }

    def _maas(self) -> dict[str, Any]:
        run = self.run
        return {"run_id": str(run["id"]), "thread_id": str(run["thread_id"]), "mode": run["mode"]}

    def body(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": self.run["answer"]}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        return self._base("chat.completion") | {
            "choices": [choice],
            "usage": self.usage,
            "maas": self._maas(),
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        chunk = self._base("chat.completion.chunk") | {"choices": [choice], "maas": self._maas()}
        return f"data: {json.dumps(chunk)}\n\n"

    async def chunks(self) -> AsyncIterator[str]:
        """The finished answer in word-sized pieces (the run completed before the first one)."""
        yield self._chunk({"role": "assistant", "content": ""})
        for piece in _PIECES.findall(self.run["answer"] or ""):
            yield self._chunk({"content": piece})
        yield self._chunk({}, "stop")
        yield "data: [DONE]\n\n"
