"""What each stage does with a claimed run (or archive job): gather its inputs, call its agent (a
plain function), and commit the agent's typed result through the repository. The runner
(runner.py) does the rest: the lease, the deadline, retries, metrics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from maas.agents import analyzer, archivist, assembler, responder
from maas.llm.types import Analysis, Recorder, ResponderOptions, RespondInput
from maas.memory.search import Candidate, search
from maas.memory.store import NewMemory
from maas.memory.trace import Spans
from maas.params import ParamSet
from maas.pipeline.claim import ArchiveSlice, Claim, Job, Next
from maas.pipeline.repo import Committed, RunRepository
from maas.pipeline.status import STAGES, Stage
from maas.runtime.context import Runtime


@dataclass(frozen=True)
class Analyzed:
    analysis: Analysis
    params: ParamSet  # frozen on the run: its later stages use this version


@dataclass(frozen=True)
class Answered:
    answer: str


async def analyze(rt: Runtime, repo: RunRepository, run: Claim, record: Recorder) -> Analyzed:
    params = await rt.params.active(run.thread_id, run.user_id)
    model = rt.models.model_for(run.mode)
    # offline, analysis is CPU: in the tenant's turn; an LLM's analysis waits on the network
    share = (
        rt.context_share.turn(run.user_id) if model.mode == "offline" else contextlib.nullcontext()
    )
    async with share:
        return Analyzed(await analyzer.analyze(model, run.query, params, record), params)


async def assemble(
    rt: Runtime, repo: RunRepository, run: Claim, record: Recorder
) -> assembler.Assembled:
    """(`record` logs inferences; the assembler makes none.)"""

    async def user_search(
        query: str,
        terms: list[str],
        vec: list[float] | None,
        params: ParamSet,
        names: list[str],
        spans: Spans,
    ) -> list[Candidate]:
        async with contextlib.AsyncExitStack() as held:
            with spans.span("wait for a connection"):  # in the user's turn: a burst waits its own
                await held.enter_async_context(rt.context_share.turn(run.user_id, first=True))
                conn = await held.enter_async_context(rt.search_pool.acquire())
            return await search(conn, run.user_id, query, terms, vec, params, None, names, spans)

    analysis = Analysis.model_validate(run.analyzer_output or {})
    embedder = rt.models.embedder_for(run.mode)
    encoding = rt.settings.token_encoding
    return await assembler.assemble(
        user_search, embedder, run.query, analysis, run.param_set(), run.max_tokens, encoding
    )


async def respond(rt: Runtime, repo: RunRepository, run: Claim, record: Recorder) -> Answered:
    params = run.param_set()
    memories, history = await repo.responder_inputs(run, int(params["context.history_messages"]))
    options = ResponderOptions.from_json(run.responder_options)
    sink = rt.answer_streams.take(run.id)
    inputs = RespondInput(run.query, memories, run.context_text or "", history, options, sink)
    model = rt.models.model_for(run.mode)
    return Answered(await responder.respond(model, inputs, params, record))


# A stage's commit: the repository's, given the work's result, the next claim to take (or None)
# and the attempt's LLM calls (JSON).
Commit = Callable[[RunRepository, Claim, Any, Next | None, str], Awaitable[Committed]]
Work = Callable[[Runtime, RunRepository, Claim, Recorder], Awaitable[Any]]


async def _commit_analysis(
    repo: RunRepository, run: Claim, done: Analyzed, nxt: Next | None, calls: str
) -> Committed:
    return await repo.commit_analysis(run, done.analysis, done.params, nxt, calls)


async def _commit_context(
    repo: RunRepository, run: Claim, done: assembler.Assembled, nxt: Next | None, calls: str
) -> Committed:
    return await repo.commit_context(run, done, nxt, calls)


async def _commit_answer(
    repo: RunRepository, run: Claim, done: Answered, nxt: Next | None, calls: str
) -> Committed:
    return await repo.commit_answer(run, done.answer, calls)


@dataclass(frozen=True)
class StageSteps:
    stage: Stage
    work: Work
    commit: Commit


STEPS = {
    s.stage.name: s
    for s in (
        StageSteps(STAGES[0], analyze, _commit_analysis),
        StageSteps(STAGES[1], assemble, _commit_context),
        StageSteps(STAGES[2], respond, _commit_answer),
    )
}


@dataclass(frozen=True)
class SliceArchived:
    """The archivist's memories of one slice of a job, and the slice (the commit's guard)."""

    part: ArchiveSlice
    memories: list[NewMemory]
    dedupe_similarity: float
    semantic_dedup: float | None = None  # archivist.semantic_dedup; None = off


def turn_archived(memory: NewMemory, archived: int) -> bool:
    """Is this a fact of one message that per-turn archiving already archived? A dialog pass
    does not write it again: what that message alone holds was made from it already (a repeat
    would only merge into it), and a memory the user deleted since stays deleted. Facts drawn
    from several turns (the pass's consolidation) and from messages no turn job reached are
    written: merged into what they repeat, superseding a changed value, or new."""
    sources = set(memory.source_message_ids)
    return len(sources) == 1 and max(sources) <= archived


async def archive(rt: Runtime, repo: RunRepository, job: Job, record: Recorder) -> SliceArchived:
    """The job's next slice (MAAS_ARCHIVE_SLICE_MESSAGES / _CHARS): however big an import, an
    attempt extracts and embeds a bounded amount, the embedding stopped at the stage deadline."""
    deadline = asyncio.get_running_loop().time() + rt.settings.stage_deadline_s
    s = rt.settings
    params = await rt.params.active(job.thread_id)
    part = await repo.archive_slice(job, s.archive_slice_messages, s.archive_slice_chars)
    mode = await repo.user_llm_mode(job.user_id)
    dialog = archivist.Dialog(job.user_id, job.thread_id, part.messages, part.before)
    model, embedder = rt.models.model_for(mode), rt.models.embedder_for(mode)
    keep = None if job.scope == "turn" else lambda m: not turn_archived(m, part.archived)
    memories = await archivist.archive(model, embedder, dialog, params, record, deadline, keep)
    trigram = params.num("archivist.dedupe_similarity")
    return SliceArchived(part, memories, trigram, params.semantic_dedup())
