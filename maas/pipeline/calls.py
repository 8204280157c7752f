"""A stage's inference log: the stage's own commit writes it, in the same statement.

Every inference is logged (maas.llm_calls). A stage used to insert each call as it happened, a
round trip per call; now the calls of an attempt ride in the commit that ends it (one CTE, see
the commit_* statements), and only an attempt that does not commit (failed, cancelled, lease
lost) writes them on their own (`flush`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import orjson

from maas.db.queries import q
from maas.llm.types import CallLog
from maas.runtime.context import Runtime

log = logging.getLogger(__name__)


@dataclass
class StageCalls:
    rt: Runtime
    run_id: uuid.UUID
    user_id: uuid.UUID
    calls: list[CallLog] = field(default_factory=list)

    async def record(self, call: CallLog) -> None:
        """The stage's Recorder."""
        self.calls.append(call)
        self.rt.metrics.observe_call(call)

    def json(self) -> str:
        """The calls as the statements' JSON argument (jsonb_to_recordset)."""
        return orjson.dumps([_fields(c) for c in self.calls]).decode()

    async def flush(self) -> None:
        """Write what no commit wrote. A database that is away loses them (logged): the attempt
        they belong to is retried and logs its own."""
        if not self.calls:
            return
        try:
            args = (self.run_id, self.user_id, self.json())
            await self.rt.pool.execute(q("insert_llm_calls"), *args)
            self.calls.clear()
        except Exception as exc:  # on the failure path: never mask the failure being recorded
            log.warning("could not log %d calls of run %s: %s", len(self.calls), self.run_id, exc)


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
