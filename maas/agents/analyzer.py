"""Analyzer: search keys (keywords, entities, time expressions) for the message."""

from __future__ import annotations

from typing import Any

from maas.db.queries import q
from maas.llm.types import Recorder
from maas.pipeline.claim import Claim, Next, StageCommit, next_args
from maas.runtime.context import Runtime


async def analyze(rt: Runtime, run: Claim, record: Recorder) -> StageCommit:
    params = await rt.params.active(run.thread_id)
    model = rt.model_for(run.mode)
    analysis = await model.analyze(run.query, params, record)

    async def commit(conn: Any, nxt: Next | None, calls: str) -> Any:
        return await conn.fetchrow(
            q("commit_analyze"),
            run.id,
            run.lease_token,
            analysis.model_dump(),
            params.version,
            params.values,
            *next_args(nxt),
            run.user_id,
            calls,
        )

    return commit
