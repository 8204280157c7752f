"""Corpus replay: conversations (an emulator world's, or a corpus in LoCoMo's format) become
synthetic users whose histories are imported with their own dates, then their questions are asked
through POST /v1/context like any client, and each answer is scored from the evidence message ids.

Histories are stored once (`ingest`) and asked many times (`ask`): parameters that act at
retrieval time (retrieval.*, context.*) replay the questions over the same stored memories;
parameters that change what is stored (archivist.*) need another ingest. `Replay.run` is the plain
emulator run (`maas emulate --corpus DIR`, `--world`): ingest, ask, summarise.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from selflearn.emulator.client import MaasClient, MaasUnavailable, SyntheticUser
from selflearn.emulator.corpus import Conversation, Question
from selflearn.teacher.metrics import Asked, Retrieved, answer_in_context, asked_values

log = logging.getLogger(__name__)
Pin = Callable[[str], Awaitable[None]]  # a thread id to pin (re-ingest arms), before it closes
Progress = Callable[[int], Awaitable[None]]  # users asked so far


@dataclass(frozen=True)
class ReplayConfig:
    budget: int = 2000  # max_tokens of every /v1/context call
    concurrency: int = 4  # users ingested / asked at once
    label: str = "replay"  # prefix of the synthetic users' names
    abstain_floor: float = 1.0  # a best score below it = declining (abstention correctness)
    ingest_timeout_s: float = 600.0  # per user: every thread archived
    # each question asked at this budget too, recorded with its budget beside the first answer
    # (budget_recall_other: what a change does at the budget it was not tuned for); 0: not
    other_budget: int = 0


@dataclass
class Stored:
    """One conversation stored as one synthetic user: its key and turn id → message id."""

    conversation: Conversation
    user: SyntheticUser
    message_ids: dict[str, int] = field(default_factory=dict)

    def evidence(self, q: Question) -> frozenset[int]:
        return frozenset(self.message_ids[t] for t in q.evidence if t in self.message_ids)


@dataclass(frozen=True)
class Answer:
    """What one question got on one arm; `asked` is what the Teacher's formulas read."""

    asked: Asked
    question: Question
    arm: str | None
    budget: int
    context_tokens: int


class AnswerRecorder(Protocol):
    async def answer(self, answer: Answer) -> None: ...


def _retrieved(body: dict[str, Any]) -> tuple[tuple[Retrieved, ...], float | None]:
    ranked = sorted(body.get("memories") or [], key=lambda m: int(m["rank"]))
    items = tuple(
        Retrieved(bool(m.get("used")), frozenset(m.get("source_message_ids") or ())) for m in ranked
    )
    top = max((float(m["score"]) for m in ranked), default=None)
    return items, top


def score(
    stored: Stored, q: Question, body: dict[str, Any], arm: str | None, budget: int
) -> Answer:
    """One /v1/context reply, scored against the question's ground truth."""
    retrieved, top = _retrieved(body)
    hit = (
        answer_in_context(q.answer, body.get("context") or "")
        if q.answer and q.answerable
        else None
    )
    asked = Asked(
        str(body["run_id"]),
        stored.user.user_id,
        stored.conversation.conversation_id,
        q.question_id,
        q.type,
        stored.evidence(q),
        hit,
        top,
        retrieved,
    )
    return Answer(asked, q, arm, budget, int(body.get("context_tokens") or 0))


class Replay:
    def __init__(
        self,
        client: MaasClient,
        recorder: AnswerRecorder,
        config: ReplayConfig,
        conversations: list[Conversation],
        stop: asyncio.Event | None = None,
    ) -> None:
        self.client = client
        self.recorder = recorder
        self.config = config
        self.conversations = conversations
        # what is asked of each stored conversation: these conversations' questions (a stored
        # history may be shared with replays that ask other questions of it)
        self.questions = {c.conversation_id: c.questions for c in conversations}
        self.stop = stop or asyncio.Event()
        self.answers: list[Answer] = []  # at the replay's budget
        self.other_answers: list[Answer] = []  # at its other budget, when it has one
        self.errors: Counter[str] = Counter()
        self.turns = 0

    # ---- storing histories -----------------------------------------------------------------

    async def ingest(
        self, pin: Pin | None = None, conversations: list[Conversation] | None = None
    ) -> list[Stored]:
        """Every conversation (or those given) as a new synthetic user, `concurrency` at a time;
        each session a thread (imported, closed, archived). In conversation order."""
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(conv: Conversation) -> Stored:
            async with gate:
                return await self._store(conv, pin)

        todo = self.conversations if conversations is None else conversations
        return list(await asyncio.gather(*(one(c) for c in todo)))

    async def _store(self, conv: Conversation, pin: Pin | None) -> Stored:
        user = await self.client.create_user(f"{self.config.label} {conv.conversation_id}"[:200])
        stored = Stored(conv, user)
        threads = []
        for session in conv.sessions:
            if self.stop.is_set() or not session.turns:
                continue
            messages = [
                {
                    "role": "user",
                    "speaker": t.speaker,
                    "text": t.text,
                    "created_at": t.created_at.isoformat(),
                }
                for t in session.turns
            ]
            title = f"{conv.conversation_id} {session.session_id}"
            thread_id, ids = await self.client.import_session(user, title, messages)
            stored.message_ids.update(zip((t.turn_id for t in session.turns), ids, strict=True))
            if pin is not None:
                await pin(thread_id)
            await self.client.close(user, thread_id)
            threads.append(thread_id)
            self.turns += len(messages)
        for thread_id in threads:
            await self.client.archived(user, thread_id, self.config.ingest_timeout_s)
        return stored

    # ---- asking ----------------------------------------------------------------------------

    async def ask(self, stored: Stored, arm: str | None = None) -> list[Answer]:
        """Every question of one stored user, one after the other; each scored and recorded."""
        out = []
        for q in self.questions.get(stored.conversation.conversation_id, ()):
            if self.stop.is_set():
                break
            if q.answerable and not stored.evidence(q):
                continue
            answer = await self._asked(stored, q, arm, self.config.budget)
            if answer is None:
                continue
            out.append(answer)
            if self.config.other_budget and q.answerable:
                other = await self._asked(stored, q, arm, self.config.other_budget)
                self.other_answers += [other] if other is not None else []
        self.answers += out
        return out

    async def _asked(
        self, stored: Stored, q: Question, arm: str | None, budget: int
    ) -> Answer | None:
        """One question through /v1/context at this budget, scored and recorded (None: failed,
        counted in `errors`)."""
        try:
            body = await self.client.context(stored.user, q.question, budget)
        except MaasUnavailable as exc:
            self.errors[str(exc)[:120]] += 1
            return None
        if body.get("status") != "READY":
            self.errors[f"run {body.get('status')}"] += 1
            return None
        answer = score(stored, q, body, arm, budget)
        await self.recorder.answer(answer)
        return answer

    async def run(
        self, stored: list[Stored] | None = None, progress: Progress | None = None
    ) -> dict[str, Any]:
        """The plain emulator run: store (unless given), ask every question once, summarise."""
        started = time.monotonic()
        stored = stored if stored is not None else await self.ingest()
        gate = asyncio.Semaphore(self.config.concurrency)
        done = 0

        async def one(s: Stored) -> None:
            nonlocal done
            async with gate:
                await self.ask(s)
                done += 1
                if progress is not None:
                    await progress(done)

        await asyncio.gather(*(one(s) for s in stored))
        return summary(
            self.answers,
            self.config,
            time.monotonic() - started,
            self.turns,
            self.errors,
            self.stop.is_set(),
        )


def _means(answers: list[Answer], floor: float) -> dict[str, Any]:
    values: dict[str, list[float]] = defaultdict(list)
    for a in answers:
        for name, value in asked_values(a.asked, floor).items():
            if value is not None:
                values[name].append(value)
    means = {name: round(sum(v) / len(v), 4) for name, v in sorted(values.items())}
    return {"questions": len(answers), **means}


def summary(
    answers: list[Answer],
    config: ReplayConfig,
    wall_s: float,
    turns: int,
    errors: Counter[str],
    stopped: bool,
) -> dict[str, Any]:
    """Means over questions (the Teacher's per-question formulas), overall and per type."""
    types = sorted({a.question.type for a in answers})
    floor = config.abstain_floor
    users = {a.asked.cluster for a in answers}
    return {
        "users": len(users),
        "turns": turns,
        **_means(answers, floor),
        "budget": config.budget,
        "abstain_floor": floor,
        "by_type": {t: _means([a for a in answers if a.question.type == t], floor) for t in types},
        "errors": dict(errors.most_common(5)),
        "stopped": stopped,
        "wall_s": round(wall_s, 2),
    }
