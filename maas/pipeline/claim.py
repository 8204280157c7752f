"""A claimed run, as a typed value handed to a stage."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from maas.llm.types import PackedMemory
from maas.params import ParamSet, defaults

# The archivist's effects, run by the runner inside one transaction; False = the guard did not
# hold.
Commit = Callable[[Any], Awaitable[bool]]


@dataclass(frozen=True)
class Next:
    """Claim the run's next stage in the same commit (the express lane): lease and worker."""

    lease_s: float
    worker: str


# A pipeline stage's commit: one statement (maas.commit_* functions, migration 0019) given the
# next stage's claim to take, if any, and the attempt's LLM calls (JSON, maas/pipeline/calls.py)
# to write with it; it returns a row with `finished` (the guard held) and, when it claimed the
# next stage, that claim's columns (lease_token not null). None = not finished.
StageCommit = Callable[[Any, Next | None, str], Awaitable[Any]]


def next_args(nxt: Next | None) -> tuple[float | None, str | None]:
    return (nxt.lease_s, nxt.worker) if nxt else (None, None)


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
    # The packed memories, when the assembler that packed them hands the run on itself (express
    # lane): the responder need not read them back. Not a column.
    memories: tuple[PackedMemory, ...] | None = None
    # The thread's messages before the run's, newest first (role, content), when the commit that
    # claimed the run read them for its stage (the assembler's, for the responder).
    history: list[dict[str, str]] | None = None

    @classmethod
    def from_row(cls, row: Any) -> Claim:
        return cls(**{name: row[name] for name in COLUMNS}, history=row.get("history"))

    def param_set(self) -> ParamSet:
        """The parameters frozen on the run by the analyzer, so one run uses one version."""
        if self.params is None or self.param_version is None:
            return defaults()
        return ParamSet(self.param_version, dict(self.params))


COLUMNS = tuple(n for n in Claim.__dataclass_fields__ if n not in ("memories", "history"))
