"""The pipeline's repository: the only code that writes runs and archive jobs (maas.pipeline_runs,
maas.archive_jobs). Submission, claims under a lease, renewals, the guarded commit of each stage
(each one statement, the attempt's LLM calls in it), retries, releases, crash recovery, idle
queueing and retention; and what a stage reads of its run. Statements: repo.sql.

Every status change is guarded by the lease: a commit whose guard finds the run moved on writes
nothing and raises LostLease (someone else owns the run now)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from maas.agents.assembler import Assembled
from maas.db.queries import q
from maas.errors import NotFound
from maas.llm.types import Analysis, HistoryMessage, PackedMemory
from maas.llm.when import day
from maas.memory import store
from maas.memory.budget import split_speaker
from maas.params import ParamSet
from maas.pipeline import retrievals
from maas.pipeline.claim import ArchiveSlice, Claim, Job, Next
from maas.pipeline.status import Stage


class LostLease(Exception):
    """The guarded commit found the row moved on: someone else owns it now."""


class KeyTaken(Exception):
    """Another request with the same idempotency key committed first."""


@dataclass(frozen=True)
class Committed:
    """What a stage's commit did."""

    next: Claim | None = None  # the next stage's claim, taken by the same statement (express)
    run: Any = None  # the finished run as get_run returns it (the last stage's commit)
    memories: retrievals.MemoryRows | None = None  # the run's memories as stored (assembler's)


@dataclass(frozen=True)
class Submission:
    run_id: uuid.UUID
    key_hash: str  # the caller's API key (sha256): the statement authenticates it
    thread_id: uuid.UUID | None
    title: str
    message: str
    mode: str
    stop_at: str
    client_type: str
    idempotency_key: str | None
    max_tokens: int | None
    claim: bool  # take the analyzer's claim in the same commit (express lane)
    responder_options: dict[str, Any] | None = None  # the client's (claim.py, ResponderOptions)


class RunRepository:
    def __init__(self, pool: Any, lease_s: float, worker_id: str) -> None:
        self.pool = pool
        self.lease_s = lease_s
        self.worker_id = worker_id

    def next_claim(self) -> Next:
        """The next stage's claim a commit takes for this process (the express lane)."""
        return Next(self.lease_s, self.worker_id)

    # ---- submission

    async def submit(self, s: Submission) -> Any:
        """Message + run in one statement (maas.submit_run); None for an unknown or revoked key.
        NotFound for a thread not the caller's, KeyTaken for a taken idempotency key."""
        try:
            return await self.pool.fetchrow(
                q("submit_run"), s.run_id, s.key_hash, s.thread_id, s.title, s.message, s.mode,
                s.stop_at, s.client_type, s.idempotency_key, s.max_tokens,
                self.lease_s if s.claim else None, self.worker_id, s.responder_options,
            )  # fmt: skip
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == "MA404":
                raise NotFound(f"thread {s.thread_id} not found") from None
            if exc.sqlstate == "MA409":
                raise KeyTaken() from None
            raise

    async def run_by_idempotency_key(self, user_id: Any, key: str) -> Any:
        return await self.pool.fetchrow(q("run_by_idempotency_key"), user_id, key)

    async def run_status(self, run_id: uuid.UUID) -> Any:
        return await self.pool.fetchrow(q("run_status"), run_id)

    # ---- claims and their lease

    async def claim(self, stage: Stage) -> Claim | None:
        row = await self.pool.fetchrow(
            q("claim_run"), stage.queue.value, stage.working.value, self.lease_s, self.worker_id
        )
        return Claim.from_row(row) if row else None

    async def renew(self, run: Claim) -> bool:
        lease = (run.id, run.lease_token, self.lease_s)
        found = await self.pool.fetchval(q("renew_run_lease"), *lease)
        return found is not None

    async def retry_or_fail(
        self, run: Claim, stage: Stage, error: str, delay_s: float, max_attempts: int
    ) -> str:
        """Back to the stage's queue after `delay_s`, or FAILED once attempts reach
        `max_attempts` (0: none left). Returns the status it got."""
        status: str = await self.pool.fetchval(
            q("retry_or_fail_run"), run.id, run.lease_token, stage.queue.value, error, delay_s,
            max_attempts,
        )  # fmt: skip
        return status

    async def release(self, run: Claim, stage: Stage) -> None:
        """Shutdown: back to the stage's queue, the attempt not counted."""
        await self.pool.execute(q("release_run"), run.id, run.lease_token, stage.queue.value)

    async def log_calls(self, run: Claim, calls: str) -> None:
        """The LLM calls of an attempt that did not commit (a commit writes its own)."""
        await self.pool.execute(q("insert_llm_calls"), run.id, run.user_id, calls)

    # ---- the stages' commits: one statement each

    async def commit_analysis(
        self, run: Claim, analysis: Analysis, params: ParamSet, nxt: Next | None, calls: str
    ) -> Committed:
        row = await self.pool.fetchrow(
            q("commit_analyze"), run.id, run.lease_token, analysis.model_dump(), params.version,
            params.values, *_next_args(nxt), run.user_id, calls,
        )  # fmt: skip
        return _committed(row)

    async def commit_context(
        self, run: Claim, assembled: Assembled, nxt: Next | None, calls: str
    ) -> Committed:
        """The packed context and every candidate; with the responder's claim comes what the
        responder reads next (the thread's history), and the packed memories ride along."""
        stored = retrievals.components(assembled.found)
        history = int(run.param_set()["context.history_messages"])
        packed = assembled.packed
        row = await self.pool.fetchrow(
            q("commit_assemble"), run.id, run.lease_token, packed.text, packed.tokens,
            *retrievals.columns(assembled, stored), *_next_args(nxt), run.user_id, calls,
            orjson.dumps(assembled.spans).decode(), history,
        )  # fmt: skip
        done = _committed(row, memories=tuple(packed.memories))
        return Committed(done.next, None, retrievals.reply_rows(assembled, stored))

    async def commit_answer(self, run: Claim, answer: str, calls: str) -> Committed:
        """The last stage: the answer, also the thread's assistant message; returns the run."""
        args = (run.thread_id, run.user_id, run.id, run.lease_token, answer, calls)
        row = await self.pool.fetchrow(q("commit_respond"), *args)
        if row is None:
            raise LostLease()
        return Committed(run=row)

    # ---- what the stages read

    async def responder_inputs(
        self, run: Claim, history_n: int
    ) -> tuple[list[PackedMemory], list[HistoryMessage]]:
        """The packed memories and the thread's last `history_n` messages before the run's,
        oldest first; what the assembler's commit handed over is not read again."""
        async with self.pool.acquire() as conn:
            memories = list(run.memories) if run.memories is not None else await _packed(conn, run)
            history: list[Any] = run.history or []
            if run.history is None and run.thread_id is not None and history_n > 0:
                history = await conn.fetch(
                    q("thread_history"), run.thread_id, run.message_id or 2**62, history_n
                )
        past = [HistoryMessage(_chat_role(h["role"]), h["content"]) for h in reversed(history)]
        return memories, past

    # ---- archive jobs (each claim archives one bounded slice of the job's range)

    async def claim_job(self) -> Job | None:
        """Fair across users, one job of a thread at a time (claim_archive_job)."""
        row = await self.pool.fetchrow(q("claim_archive_job"), self.lease_s, self.worker_id)
        return Job.from_row(row) if row else None

    async def renew_job(self, job: Job) -> bool:
        found = await self.pool.fetchval(
            q("renew_archive_lease"), job.id, job.lease_token, self.lease_s
        )
        return found is not None

    async def archive_slice(self, job: Job, max_messages: int, max_chars: int) -> ArchiveSlice:
        """The job's next slice: at most `max_messages` messages and `max_chars` characters (at
        least one message) after the thread's mark of the job's scope, up to its last message,
        and the message the slice follows (context for the archivist)."""
        found = await self.pool.fetch(
            q("archive_slice"), job.thread_id, job.upto_message_id, max_messages, max_chars,
            job.scope,
        )  # fmt: skip
        mark, archived = (found[0]["mark"], found[0]["archived"]) if found else (0, 0)
        messages = [r for r in found if r["id"] is not None]
        before = (
            await self.pool.fetchrow(q("message_before"), job.thread_id, mark) if messages else None
        )
        return ArchiveSlice(mark, messages, archived, before)

    async def user_llm_mode(self, user_id: Any) -> str | None:
        """The mode the user is pinned to (a test run's throwaway user); None: the configured."""
        mode: str | None = await self.pool.fetchval(q("user_llm_mode"), user_id)
        return mode

    async def commit_slice(
        self,
        job: Job,
        part: ArchiveSlice,
        memories: list[store.NewMemory],
        dedupe: float,
        semantic: float | None = None,
    ) -> int:
        """In one transaction: the slice's memories (near duplicates at trigram similarity
        `dedupe`, or at embedding cosine `semantic`, merged: store.write), the thread's mark moved
        to the slice's end and the job done, or queued for its next slice. LostLease when the
        lease or the mark moved meanwhile. Returns the memories created."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(q("set_trgm_thresholds"), str(dedupe), str(dedupe))
            created = await store.write_all(conn, job.user_id, memories, semantic)
            args = (job.id, job.lease_token, created, part.last, part.mark)
            if await conn.fetchval(q("finish_archive_slice"), *args) is None:
                raise LostLease()
        return created

    async def log_job_call(self, job: Job, call: str) -> None:
        """One inference of an archive job (a JSON array of one call), logged as it happens."""
        await self.pool.execute(q("insert_llm_call"), None, job.id, job.user_id, call)

    async def retry_or_fail_job(
        self, job: Job, error: str, delay_s: float, max_attempts: int, retry_s: float
    ) -> str:
        """Queued again after `delay_s`, or failed once attempts reach `max_attempts` (0: none
        left); a failed job is revived after `retry_s` doubling per round (revive_failed)."""
        status: str = await self.pool.fetchval(
            q("retry_or_fail_archive_job"), job.id, job.lease_token, error, delay_s,
            max_attempts, retry_s,
        )  # fmt: skip
        return status

    async def release_job(self, job: Job) -> None:
        await self.pool.execute(q("release_archive_job"), job.id, job.lease_token)

    async def queue_archive(self, conn: Any, thread_id: Any, user_id: Any, reason: str) -> Any:
        """Archive the thread up to its latest message (in the caller's transaction, e.g. the
        one closing the thread); None when there is nothing new."""
        return await conn.fetchval(q("queue_archive_job"), thread_id, user_id, reason)

    async def erase_memory(self, memory_id: int, user_id: Any) -> bool:
        """Delete a memory of the user and scrub its text from the packed contexts and answers
        of the user's runs (and the assistant messages that are those answers): its whole text,
        and the text its line shows under its speaker's header (budget.split_speaker)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(q("lock_memory_of"), memory_id, user_id)
            if row is None:
                return False
            who, shown = split_speaker(row["text"], row["speaker"])
            args = (memory_id, user_id, shown if who else None)
            return await conn.fetchval(q("delete_memory"), *args) is not None

    # ---- maintenance

    async def requeue_stale(self, max_attempts: int, retry_s: float) -> tuple[int, int]:
        """Runs and jobs whose lease ran out go back to their queue (or fail; a failed job is
        revived after `retry_s`, see retry_or_fail_job)."""
        runs = await self.pool.fetch(q("requeue_stale_runs"), max_attempts)
        jobs = await self.pool.fetch(q("requeue_stale_archive_jobs"), max_attempts, retry_s)
        return len(runs), len(jobs)

    async def revive_failed_jobs(self) -> int:
        """Failed archive jobs whose retry time has come: queued again, attempts renewed (a
        failed range is never given up)."""
        return len(await self.pool.fetch(q("revive_failed_archive_jobs")))

    async def queue_idle_threads(self, idle_s: float) -> int:
        return len(await self.pool.fetch(q("queue_idle_threads"), idle_s))

    async def prune(self, retention_days: float) -> None:
        await self.pool.execute(q("prune_finished_runs"), retention_days)
        await self.pool.execute(q("prune_llm_calls"), retention_days)


def _next_args(nxt: Next | None) -> tuple[float | None, str | None]:
    return (nxt.lease_s, nxt.worker) if nxt else (None, None)


def _committed(row: Any, memories: tuple[PackedMemory, ...] | None = None) -> Committed:
    """A stage_commit row: LostLease when the guard did not hold; the next claim if taken."""
    if row is None or not row["finished"]:
        raise LostLease()
    if row["lease_token"] is None:
        return Committed()
    return Committed(next=Claim.from_row(row, memories))


async def _packed(conn: Any, run: Claim) -> list[PackedMemory]:
    """The memories the assembler packed, as it packed them (dated like the packer dates)."""
    rows = await conn.fetch(q("used_memories"), run.id)
    return [PackedMemory(r["text"], day(r["event_time"] or r["created_at"])) for r in rows]


def _chat_role(role: str) -> str:
    return "assistant" if role == "assistant" else "user"
