"""What the agents ask of a language model, independent of whether one is configured."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from maas.params import ParamSet


class Analysis(BaseModel):
    keywords: list[str] = Field(default_factory=list, max_length=64)
    entities: list[str] = Field(default_factory=list, max_length=64)
    time_expressions: list[str] = Field(default_factory=list, max_length=64)
    # sub-questions of a question about several things at once, each searched on its own
    # (an LLM analyzer's; offline has none)
    parts: list[str] = Field(default_factory=list, max_length=64)


class Fact(BaseModel):
    text: str = Field(min_length=1, max_length=2000)
    importance: float = Field(default=0.5, ge=0, le=1)
    source: list[int] = Field(default_factory=list)
    kind: str = "fact"
    slot: str | None = None


class Facts(BaseModel):
    facts: list[Fact] = Field(default_factory=list)


@dataclass(frozen=True)
class TranscriptLine:
    number: int  # shown to the LLM; mapped back to a message id by the archivist
    role: str
    speaker: str | None
    text: str
    at: datetime | None


@dataclass(frozen=True)
class PackedMemory:
    text: str
    date: str | None


@dataclass(frozen=True)
class HistoryMessage:
    role: str
    content: str


@dataclass
class CallLog:
    stage: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    ms: float
    outcome: str  # ok | error | invalid | timeout
    error: str | None = None


Recorder = Callable[[CallLog], Awaitable[None]]
# Where the model's answer goes token by token as it arrives (a caller that streams it).
Delta = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class ResponderOptions:
    """A client's own instructions for the answer (POST /v1/chat/completions): its system
    message, kept ahead of MaaS's prompt with the memories, and the sampling options it sent,
    forwarded to the model over MaaS's own (llm.temperature, llm.max_answer_tokens). Kept on the
    run as JSON (pipeline_runs.responder_options) so whichever process answers it uses them."""

    system: str = ""
    sampling: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any] | None:
        if not self.system and not self.sampling:
            return None
        return {"system": self.system, "sampling": self.sampling}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ResponderOptions:
        data = data or {}
        return cls(str(data.get("system") or ""), dict(data.get("sampling") or {}))


@dataclass
class RespondInput:
    message: str
    memories: list[PackedMemory]
    context: str = ""  # the packed context exactly as counted against the budget
    history: list[HistoryMessage] = field(default_factory=list)
    options: ResponderOptions = field(default_factory=ResponderOptions)
    on_delta: Delta | None = None  # stream the answer's tokens here (the LLM's; offline: none)


class LanguageModel(Protocol):
    mode: str  # "offline" or "llm", shown in every response

    async def analyze(self, message: str, params: ParamSet, rec: Recorder) -> Analysis: ...

    async def extract_facts(
        self, lines: list[TranscriptLine], params: ParamSet, rec: Recorder
    ) -> list[Fact]: ...

    async def respond(self, data: RespondInput, params: ParamSet, rec: Recorder) -> str: ...
