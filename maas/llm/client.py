"""An OpenAI-compatible model (OpenAI, Ollama, vLLM, llama.cpp server) through the openai SDK.

One retry layer lives here (the SDK's own retries are off): 429 honours Retry-After up to a cap,
5xx/timeouts/connection errors and invalid JSON are retried, other 4xx are not. A per-call timeout
and a total deadline per stage bound every call; each attempt is logged through the recorder.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from pydantic import BaseModel, ValidationError

from maas.errors import LLMError
from maas.llm import prompts
from maas.llm.types import (
    Analysis,
    CallLog,
    Delta,
    Fact,
    Facts,
    Recorder,
    ResponderOptions,
    RespondInput,
    TranscriptLine,
)
from maas.params import ParamSet

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class LLMConfig:
    base_url: str | None
    api_key: str
    model: str
    timeout_s: float
    max_retries: int
    retry_after_cap_s: float
    stage_deadline_s: float


@dataclass
class _Failure:
    outcome: str
    message: str
    retryable: bool
    delay_s: float
    permanent: bool = False  # the server refused the request itself (401, 403, 400…)


class OpenAIModel:
    mode = "llm"

    def __init__(self, cfg: LLMConfig) -> None:
        self.cfg = cfg
        self.client = openai.AsyncOpenAI(
            base_url=cfg.base_url, api_key=cfg.api_key, max_retries=0, timeout=cfg.timeout_s
        )

    async def close(self) -> None:
        await self.client.close()

    async def analyze(self, message: str, params: ParamSet, rec: Recorder) -> Analysis:
        system = prompts.render("analyzer", max_keywords=params["llm.analyzer_max_keywords"])
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": message}]
        result = await self._json_call("analyzer", msgs, Analysis, rec, temperature=0.0)
        result.keywords = result.keywords[: int(params["llm.analyzer_max_keywords"])]
        return result

    async def extract_facts(
        self, lines: list[TranscriptLine], params: ParamSet, rec: Recorder
    ) -> list[Fact]:
        transcript = json.dumps([_transcript_entry(line) for line in lines], ensure_ascii=False)
        msgs = [
            {"role": "system", "content": prompts.render("archivist")},
            {"role": "user", "content": transcript},
        ]
        return (await self._json_call("archivist", msgs, Facts, rec, temperature=0.0)).facts

    async def respond(self, data: RespondInput, params: ParamSet, rec: Recorder) -> str:
        """The answer; a client's own system message goes first in the system prompt, MaaS's
        (the memories quoted as data) after it, and its sampling options over MaaS's."""
        system = prompts.render("responder", context=data.context)
        if data.options.system:
            system = f"{data.options.system}\n\n{system}"
        msgs = [{"role": "system", "content": system}]
        msgs += [{"role": h.role, "content": h.content} for h in data.history]
        msgs.append({"role": "user", "content": data.message})
        sampling = _sampling(data.options, params)
        answer: str = await self._call("responder", msgs, rec, on_delta=data.on_delta, **sampling)
        return answer

    async def _json_call(
        self, stage: str, msgs: list[dict[str, str]], model: type[M], rec: Recorder, **kw: Any
    ) -> M:
        def parse(content: str) -> M:
            return model.model_validate(json.loads(_strip_fence(content)))

        result: M = await self._call(stage, msgs, rec, parse=parse, json_mode=True, **kw)
        return result

    async def _call(
        self,
        stage: str,
        msgs: list[dict[str, str]],
        rec: Recorder,
        parse: Any = None,
        json_mode: bool = False,
        on_delta: Delta | None = None,
        **kw: Any,
    ) -> Any:
        deadline = time.monotonic() + self.cfg.stage_deadline_s
        last, permanent = "no attempt made", False
        for attempt in range(self.cfg.max_retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                call = _Request(stage, msgs, json_mode, kw, on_delta)
                return await self._attempt(call, rec, parse, remaining)
            except _Retry as retry:
                last, permanent = retry.failure.message, retry.failure.permanent
                if not retry.failure.retryable or attempt == self.cfg.max_retries:
                    break
                await asyncio.sleep(min(retry.failure.delay_s, max(deadline - time.monotonic(), 0)))
        raise LLMError(f"{stage}: {last}", permanent=permanent)

    async def _attempt(self, call: _Request, rec: Recorder, parse: Any, remaining: float) -> Any:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(min(remaining, self.cfg.timeout_s)):
                content = await self._create(call)
            result = parse(content) if parse else content
        except Exception as exc:  # classified below; anything unknown is not retried
            failure = self._classify(exc)
            if call.streamed:  # the caller has part of this attempt's answer: no second one
                failure.retryable = False
            await rec(self._log(call.stage, started, call.usage, failure.outcome, failure.message))
            raise _Retry(failure) from exc
        await rec(self._log(call.stage, started, call.usage, "ok", None))
        return result

    async def _create(self, call: _Request) -> str:
        """One request: the whole reply, or (with a delta sink) the reply streamed into it."""
        create: Any = self.client.chat.completions.create
        json_mode = {"response_format": {"type": "json_object"}} if call.json_mode else {}
        args = {"model": self.cfg.model, "messages": call.msgs, **json_mode, **call.kw}
        headers = {"X-MaaS-Stage": call.stage}
        if call.on_delta is None:
            resp = await create(extra_headers=headers, **args)
            call.usage = _usage(resp)
            return str(resp.choices[0].message.content or "")
        usage = {"include_usage": True}
        stream = await create(extra_headers=headers, stream=True, stream_options=usage, **args)
        pieces: list[str] = []
        async for chunk in stream:
            call.usage = _usage(chunk) if chunk.usage is not None else call.usage
            piece = chunk.choices[0].delta.content if chunk.choices else None
            if piece:
                pieces.append(piece)
                call.streamed = True
                await call.on_delta(piece)
        return "".join(pieces)

    def _log(
        self, stage: str, started: float, usage: tuple[int, int], outcome: str, error: str | None
    ) -> CallLog:
        ms = (time.perf_counter() - started) * 1000
        return CallLog(stage, self.cfg.model, usage[0], usage[1], ms, outcome, error)

    def _classify(self, exc: BaseException) -> _Failure:
        backoff = 0.5
        if isinstance(exc, openai.RateLimitError):
            wait = _retry_after(exc.response.headers.get("retry-after"), backoff)
            return _Failure(
                "error", "rate limited (429)", True, min(wait, self.cfg.retry_after_cap_s)
            )
        if isinstance(exc, TimeoutError | openai.APITimeoutError):
            return _Failure("timeout", f"timed out after {self.cfg.timeout_s}s", True, backoff)
        if isinstance(exc, openai.APIConnectionError):
            return _Failure("error", f"connection error: {exc}", True, backoff)
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            refused = 400 <= code < 500 and code not in (408, 409)
            message = f"HTTP {code}: {_short(exc.message)}"
            return _Failure("error", message, code >= 500, backoff, permanent=refused)
        if isinstance(exc, ValidationError | ValueError | IndexError):
            return _Failure("invalid", f"invalid reply: {_short(str(exc))}", True, 0.0)
        return _Failure("error", f"{type(exc).__name__}: {_short(str(exc))}", False, 0.0)


@dataclass
class _Request:
    """One model call's request, and what its attempts learnt (usage, tokens streamed)."""

    stage: str
    msgs: list[dict[str, str]]
    json_mode: bool
    kw: dict[str, Any]
    on_delta: Delta | None
    usage: tuple[int, int] = (0, 0)
    streamed: bool = False


def _sampling(options: ResponderOptions, params: ParamSet) -> dict[str, Any]:
    """MaaS's sampling parameters, overridden by the ones the client sent; max_completion_tokens
    (OpenAI's newer name) replaces max_tokens, as a server refuses both at once."""
    ours: dict[str, Any] = {
        "temperature": params.num("llm.temperature"),
        "max_tokens": int(params["llm.max_answer_tokens"]),
    }
    if "max_completion_tokens" in options.sampling:
        del ours["max_tokens"]
    return ours | options.sampling


class _Retry(Exception):
    def __init__(self, failure: _Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def _usage(resp: Any) -> tuple[int, int]:
    usage = getattr(resp, "usage", None)
    if usage is None:
        return (0, 0)
    return (int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0))


def _retry_after(value: str | None, default: float) -> float:
    try:
        return max(float(value), 0.0) if value is not None else default
    except ValueError:
        return default


def _strip_fence(content: str) -> str:
    """Some servers wrap JSON in ``` fences despite json mode."""
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[-1].rsplit("```", 1)[0]
    return text


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _transcript_entry(line: TranscriptLine) -> dict[str, Any]:
    """One message of the archivist's transcript, as JSON data: an imported speaker's text cannot
    forge a line of its own (it could in the old "[n] role: text" lines, by a newline)."""
    return {
        "n": line.number,
        "role": line.role,
        "speaker": line.speaker,
        "date": line.at.date().isoformat() if line.at else None,
        "text": line.text,
    }
