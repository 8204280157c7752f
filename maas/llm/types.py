"""What the agents ask of a language model, independent of whether one is configured."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, Field

from maas.params import ParamSet


class Analysis(BaseModel):
    keywords: list[str] = Field(default_factory=list, max_length=64)
    entities: list[str] = Field(default_factory=list, max_length=64)
    time_expressions: list[str] = Field(default_factory=list, max_length=64)


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


@dataclass
class RespondInput:
    message: str
    memories: list[PackedMemory]
    context: str = ""  # the packed context exactly as counted against the budget
    history: list[HistoryMessage] = field(default_factory=list)


class LanguageModel(Protocol):
    mode: str  # "offline" or "llm", shown in every response

    async def analyze(self, message: str, params: ParamSet, rec: Recorder) -> Analysis: ...

    async def extract_facts(
        self, lines: list[TranscriptLine], params: ParamSet, rec: Recorder
    ) -> list[Fact]: ...

    async def respond(self, data: RespondInput, params: ParamSet, rec: Recorder) -> str: ...
