"""What a claim hands the work: a leased run (Claim) or archive job (Job), as typed values."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from maas.llm.types import PackedMemory
from maas.params import ParamSet, defaults


@dataclass(frozen=True)
class Next:
    """Claim the run's next stage in the same commit (the express lane): lease and worker."""

    lease_s: float
    worker: str


@dataclass(frozen=True)
class Claim:
    id: uuid.UUID
    user_id: uuid.UUID
    thread_id: uuid.UUID | None
    message_id: int | None
    query: str
    mode: str
    stop_at: str
    max_tokens: int | None
    attempts: int
    lease_token: uuid.UUID
    params: dict[str, Any] | None
    param_version: str | None
    analyzer_output: dict[str, Any] | None
    context_text: str | None
    # The client's system message and sampling options (ResponderOptions), or None.
    responder_options: dict[str, Any] | None
    # The packed memories, when the assembler that packed them hands the run on itself (express
    # lane): the responder need not read them back. Not a column.
    memories: tuple[PackedMemory, ...] | None = None
    # The thread's messages before the run's, newest first (role, content), when the commit that
    # claimed the run read them for its stage (the assembler's, for the responder).
    history: list[dict[str, str]] | None = None

    @classmethod
    def from_row(cls, row: Any, memories: tuple[PackedMemory, ...] | None = None) -> Claim:
        return cls(
            **{name: row[name] for name in COLUMNS}, memories=memories, history=row.get("history")
        )

    def param_set(self) -> ParamSet:
        """The parameters frozen on the run by the analyzer, so one run uses one version."""
        if self.params is None or self.param_version is None:
            return defaults()
        return ParamSet(self.param_version, dict(self.params))


COLUMNS = tuple(n for n in Claim.__dataclass_fields__ if n not in ("memories", "history"))


@dataclass(frozen=True)
class Job:
    """A leased archive job: archive thread `thread_id` up to message `upto_message_id`; its
    scope is `turn` (per-turn archiving) or `dialog` (the pass of a close, an idle thread or an
    import over every message since the thread's last one: migration 0038)."""

    id: int
    thread_id: uuid.UUID
    user_id: uuid.UUID
    upto_message_id: int
    attempts: int
    lease_token: uuid.UUID
    scope: str

    @classmethod
    def from_row(cls, row: Any) -> Job:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ArchiveSlice:
    """The messages one claim of a job archives (id, role, speaker, content, created_at, in
    order), and the thread's archived mark they start after (the commit's guard)."""

    mark: int
    messages: list[Mapping[str, Any]]
    archived: int = 0  # the thread's archived mark (turn jobs') when the slice was read
    before: Mapping[str, Any] | None = None  # the thread's message before the slice, if any

    @property
    def last(self) -> int | None:
        return self.messages[-1]["id"] if self.messages else None
