"""An OpenAI-compatible endpoint with memory: POST /v1/chat/completions and GET /v1/models.

Any OpenAI Chat Completions client points its base URL at MaaS and sends a MaaS user key as its
API key. The last user message becomes a chat run like POST /v1/chat's (analyzer, assembler,
responder: the user's memories quoted as data in the system prompt, the configured LLM or the
offline extractive answer), the turn is archived like any other, and the run shows in the run
inspector. The reply is in OpenAI's shape, streamed as SSE chunks with `stream: true`.

In LLM mode the client's own system (and developer) messages go first in the model's system
prompt, MaaS's memories quoted as data after them, and the sampling options it sent
(temperature, top_p, max_tokens or max_completion_tokens, stop, penalties, seed) override MaaS's
own (llm.temperature, llm.max_answer_tokens); `stream: true` streams the model's own tokens as
they arrive when this process answers the run (maas/runtime/streams.py). Offline mode answers
with the extractive answer, labelled offline, in pieces once it is done.

Thread mapping (docs/api.md): the `X-MaaS-Thread` header names one of the caller's threads; else
the OpenAI `user` field maps each end user to one thread of the caller; else the conversation's
opening (its system messages and first user message) names its thread, so a client that resends
the whole conversation each turn stays in one thread and a new conversation gets a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from maas.api.context import ApiContext
from maas.api.deps import User, caller_key, current_user, get_api, get_runtime
from maas.api.inputs import HARD_MAX_CHARS, Flag, Int, Number, Text, within
from maas.db.queries import q
from maas.errors import UNKNOWN_KEY, BadRequest, Gone, MaasError, NotFound, Unauthorized
from maas.llm.types import ResponderOptions
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


Penalty = Annotated[Number, Field(ge=-2, le=2)]
Stop = Annotated[str, Field(max_length=200)]
# The sampling options forwarded to the model in LLM mode (ResponderOptions.sampling).
SAMPLING = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop",
    "presence_penalty", "frequency_penalty", "seed",
)  # fmt: skip


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: Flag = False


class CompletionIn(BaseModel):
    """OpenAI's request. The sampling options reach the model in LLM mode; other fields (tools,
    logprobs, ...) are accepted and not used."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: Flag = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=200)
    n: Int | None = Field(default=None, ge=1, le=1, description="MaaS answers with one choice")
    temperature: Number | None = Field(default=None, ge=0, le=2)
    top_p: Number | None = Field(default=None, ge=0, le=1)
    max_tokens: Int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: Int | None = Field(default=None, ge=1, le=1_000_000)
    stop: Stop | Annotated[list[Stop], Field(max_length=4)] | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    seed: Int | None = Field(default=None, ge=-(2**63), lt=2**63)

    def options(self) -> ResponderOptions:
        """The client's system messages and the sampling options it sent."""
        roles = ("system", "developer")
        system = [text_of(m) for m in self.messages if m.role in roles and text_of(m).strip()]
        sampling = {k: getattr(self, k) for k in SAMPLING if getattr(self, k) is not None}
        return ResponderOptions("\n\n".join(system), sampling)

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


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
            named = uuid.UUID(header)
        except ValueError:
            raise BadRequest("X-MaaS-Thread: not a thread id (a UUID)") from None
        if (
            await rt.pool.fetchrow(q("own_thread"), named, user_id) is None
        ):  # before a stream starts
            raise NotFound(f"thread {named} not found")
        return named
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
    options = body.options()
    within(options.system, rt.settings.max_message_chars, "messages (system)")
    caller = await rt.pool.fetchrow(q("openai_caller"), key)
    if caller is None:
        raise Unauthorized(UNKNOWN_KEY)
    thread_id = await thread_for(rt, caller["id"], body, thread)
    run_id = uuid.uuid4()  # named before the run exists: a live stream's headers go out first
    req = ChatRequest(key, message, thread_id, client_type="openai", run_id=run_id)
    req = replace(req, responder_options=options.to_json())
    mode = "offline" if rt.models.mode == "offline" else caller["llm_mode"] or rt.models.mode
    if body.stream and mode == "llm":
        reply = Reply(run_id, thread_id, mode, model_name(rt), int(time.time()))
        live = _live(api, req, reply, body.include_usage())
        return StreamingResponse(live, media_type="text/event-stream", headers=reply.headers())
    run = await _finished(api, req)
    reply = Reply.of(run, model_name(rt))
    usage = await _usage(rt, run["id"], caller["id"])
    if body.stream:
        pieces = reply.replayed(run["answer"], usage if body.include_usage() else None)
        return StreamingResponse(pieces, media_type="text/event-stream", headers=reply.headers())
    return JSONResponse(reply.body(run["answer"], usage), headers=reply.headers())


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


async def _usage(rt: Runtime, run_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, int]:
    row = await rt.pool.fetchrow(q("run_token_usage"), run_id, user_id)
    prompt, completion = int(row["prompt"]), int(row["completion"])
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def _live(
    api: ApiContext, req: ChatRequest, reply: Reply, include_usage: bool
) -> AsyncIterator[str]:
    """The run driven while the model's tokens stream out (LLM mode): each one is sent as it
    arrives; a run answered elsewhere (another process's worker) comes in pieces once done."""
    assert req.run_id is not None
    tokens: asyncio.Queue[str | None] = asyncio.Queue()

    async def sink(piece: str) -> None:
        tokens.put_nowait(piece)

    with api.runtime.answer_streams.open(req.run_id, sink):
        task = asyncio.ensure_future(_finished(api, req))
        task.add_done_callback(lambda _: tokens.put_nowait(None))
        try:
            yield reply.chunk({"role": "assistant", "content": ""})
            streamed: list[str] = []
            while (piece := await tokens.get()) is not None:
                streamed.append(piece)
                yield reply.chunk({"content": piece})
            async for event in _ending(api, task, reply, "".join(streamed), include_usage):
                yield event
        finally:
            task.cancel()  # the client left: the run goes back to its queue, still answered
            with contextlib.suppress(BaseException):
                await task


async def _ending(
    api: ApiContext, task: asyncio.Future[Any], reply: Reply, streamed: str, include_usage: bool
) -> AsyncIterator[str]:
    """After the tokens: the answer if none streamed, the usage if asked, then [DONE]; an
    error event if the run failed, or if a retried attempt answered after a broken stream."""
    try:
        run = task.result()
    except MaasError as exc:
        yield reply.error(exc)
        return
    answer = run["answer"] or ""
    if streamed and streamed.strip() != answer.strip():
        message = f"the model's stream broke off and run {run['id']} was answered again: "
        yield reply.error(RunFailed(message + f"GET /v1/runs/{run['id']}"))
        return
    usage = await _usage(api.runtime, run["id"], run["user_id"]) if include_usage else None
    for event in reply.replayed_parts("" if streamed else answer, usage):
        yield event


_PIECES = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class Reply:
    """A run's reply in OpenAI's shapes: one object, or SSE chunks ending in [DONE]."""

    run_id: uuid.UUID
    thread_id: uuid.UUID
    mode: str
    model: str
    created: int

    @classmethod
    def of(cls, run: Any, model: str) -> Reply:
        created = int(run["created_at"].timestamp())
        return cls(run["id"], run["thread_id"], run["mode"], model, created)

    def headers(self) -> dict[str, str]:
        return {
            "X-MaaS-Run-Id": str(self.run_id),
            "X-MaaS-Thread-Id": str(self.thread_id),
            "X-MaaS-Mode": self.mode,
        }

    def _base(self, kind: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{self.run_id.hex}",
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": f"maas-{self.mode}",
        }

    def _maas(self) -> dict[str, Any]:
        return {"run_id": str(self.run_id), "thread_id": str(self.thread_id), "mode": self.mode}

    def body(self, answer: str | None, usage: dict[str, int]) -> dict[str, Any]:
        message = {"role": "assistant", "content": answer}
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        return self._base("chat.completion") | {
            "choices": [choice],
            "usage": usage,
            "maas": self._maas(),
        }

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        chunk = self._base("chat.completion.chunk") | {"choices": [choice], "maas": self._maas()}
        return f"data: {json.dumps(chunk)}\n\n"

    def error(self, exc: MaasError) -> str:
        error = {"code": exc.code, "message": exc.message, "type": "api_error", "param": None}
        return f"data: {json.dumps({'error': error})}\n\n"

    async def replayed(
        self, answer: str | None, usage: dict[str, int] | None
    ) -> AsyncIterator[str]:
        """A finished answer in word-sized pieces (the run completed before the first one)."""
        yield self.chunk({"role": "assistant", "content": ""})
        for event in self.replayed_parts(answer or "", usage):
            yield event

    def replayed_parts(self, answer: str, usage: dict[str, int] | None) -> Iterator[str]:
        for piece in _PIECES.findall(answer):
            yield self.chunk({"content": piece})
        yield self.chunk({}, "stop")
        if usage is not None:  # stream_options.include_usage: a last chunk with no choices
            chunk = self._base("chat.completion.chunk") | {"choices": [], "usage": usage}
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"
