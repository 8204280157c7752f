"""A claimed run, as a typed value handed to a stage."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from maas.params import ParamSet, defaults

# A stage's effects, run by the runner inside one transaction; False = the guard did not hold.
Commit = Callable[[Any], Awaitable[bool]]


def one_statement(commit: Commit) -> Commit:
    """Mark a commit that is a single statement (atomic on its own) and claims nothing after
    it: the runner sends it without BEGIN and COMMIT, two round trips fewer."""
    commit.one_statement = True  # type: ignore[attr-defined]
    return commit


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

    @classmethod
    def from_row(cls, row: Any) -> Claim:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})

    def param_set(self) -> ParamSet:
        """The parameters frozen on the run by the analyzer, so one run uses one version."""
        if self.params is None or self.param_version is None:
            return defaults()
        return ParamSet(self.param_version, dict(self.params))
