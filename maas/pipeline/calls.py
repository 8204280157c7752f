"""A stage attempt's inference log: the stage's own commit writes it, in the same statement.

Every inference is logged (maas.llm_calls). A stage used to insert each call as it happened, a
round trip per call; now the calls of an attempt ride in the commit that ends it (the commit_*
statements), and only an attempt that does not commit (failed, cancelled, lease lost) writes them
on their own (RunRepository.log_calls).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from maas.llm.types import CallLog, Recorder
from maas.pipeline.claim import Job
from maas.pipeline.repo import RunRepository
from maas.runtime.context import Runtime
from maas.runtime.metrics import Metrics


@dataclass
class StageCalls:
    metrics: Metrics
    calls: list[CallLog] = field(default_factory=list)

    async def record(self, call: CallLog) -> None:
        """The stage's Recorder."""
        self.calls.append(call)
        self.metrics.observe_call(call)

    def json(self) -> str:
        """The calls as the statements' JSON argument (maas.llm_call_rows)."""
        return orjson.dumps([_fields(c) for c in self.calls]).decode()


def job_recorder(rt: Runtime, repo: RunRepository, job: Job) -> Recorder:
    """The archivist's Recorder: each inference logged as it happens."""

    async def record(call: CallLog) -> None:
        await repo.log_job_call(job, orjson.dumps([_fields(call)]).decode())
        rt.metrics.observe_call(call)

    return record


def _fields(c: CallLog) -> dict[str, object]:
    return {
        "stage": c.stage,
        "model": c.model,
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "ms": c.ms,
        "outcome": c.outcome,
        "error": c.error,
    }
