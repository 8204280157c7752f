"""Replay experiments: both arms ask the same questions over the same stored histories.

Histories are stored once (or reused from an earlier experiment, cycle trial or run of this
process). Then, user by user, each arm's parameter version is pinned to that synthetic user and
its questions are asked; which arm goes first alternates from one user to the next, and users are
asked `concurrency` at a time, so the arms are interleaved in time (load, a growing database and
other drift fall on both) and nobody else's runs are steered. When the arms differ in what is
stored (archivist.*), each arm's histories are imported again with its threads pinned to its
version, and the experiment says so. Questions pair across arms by (conversation, question id).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from selflearn import tuner
from selflearn.emulator.corpus import Question
from selflearn.emulator.replay import Replay, Stored, summary
from selflearn.emulator.runs import EmulatorRuns, PoolRecorder, ReplayRequest, Source
from selflearn.emulator.world import WorldSpec
from selflearn.queries import q
from selflearn.teacher.metrics import ArmData, Asked, Retrieved, RunCost
from selflearn.teacher.spec import ReplaySpec

ARMS = ("baseline", "variant")


def half(question: Question, conversation: str) -> str:
    """'search' or 'confirm': a fixed half of each conversation's questions (by a hash of the
    question id), so a confirmation can ask questions a search never saw."""
    digest = hashlib.sha256(f"{conversation}\x00{question.question_id}".encode()).digest()
    return "search" if digest[0] % 2 == 0 else "confirm"


def request(spec: ReplaySpec) -> ReplayRequest:
    world = None if spec.world is None else WorldSpec(**spec.world)
    return ReplayRequest(world, spec.corpus, spec.budget, spec.concurrency, spec.abstain_floor,
                         spec.other_budget)  # fmt: skip


def archivist(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k.startswith("archivist.")}


@dataclass
class Played:
    """What the arms played: the emulator run holding every answer, and notes for the report."""

    emulator_run: uuid.UUID
    source: dict[str, Any]
    reingested: bool
    reused: bool
    answers: dict[str, int] = field(default_factory=dict)
    baseline_from: uuid.UUID | None = None  # the baseline's answers came from this earlier run


@dataclass
class ReplayArms:
    emulator: EmulatorRuns
    pool: Callable[[], Any]
    invalidate: Callable[[], None]
    exp_id: uuid.UUID
    spec: ReplaySpec
    seed: int
    versions: dict[str, tuple[int, dict[str, Any]]]  # arm -> (version, params)
    stop: asyncio.Event
    baseline_from: uuid.UUID | None = None  # ask the variant only; the baseline was asked there

    async def play(self) -> Played:
        source = await self.emulator.source(request(self.spec))
        await self.pool().execute(q("teacher_set_source"), self.exp_id, source.about)
        run_id = await self._run_row(source)
        self.emulator.running[run_id] = (self._task(), self.stop)  # beats with the others
        replay = Replay(self.emulator.client(self.spec.concurrency),
                        PoolRecorder(self.pool(), run_id),
                        request(self.spec).config(f"experiment {self.exp_id.hex[:8]}"),
                        self._questions(source), self.stop)  # fmt: skip
        status, error = "failed", None
        try:
            stored, reingested, reused = await self._stored(replay, source)
            await self._ask(replay, stored)
            status = "stopped" if self.stop.is_set() else "completed"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
            raise
        finally:
            await self._unpin()
            await replay.client.http.aclose()
            self.emulator.running.pop(run_id, None)
            await self._finish(run_id, replay, status, error)
        counts = {arm: sum(a.arm == arm for a in replay.answers) for arm in ARMS}
        return Played(run_id, source.about, reingested, reused, counts, self.baseline_from)

    @staticmethod
    def _task() -> asyncio.Task[Any]:
        task = asyncio.current_task()
        assert task is not None
        return task

    async def _finish(
        self, run_id: uuid.UUID, replay: Replay, status: str, error: str | None
    ) -> None:
        by_arm = {arm: summary([a for a in replay.answers if a.arm == arm], replay.config, 0.0,
                               replay.turns, replay.errors, self.stop.is_set())
                  for arm in ARMS}  # fmt: skip
        result = {"arms": by_arm, "dialogs": len(replay.conversations), "turns": replay.turns,
                  "runs": len(replay.answers), "failures": sum(replay.errors.values())}  # fmt: skip
        await self.pool().execute(q("emulator_finish"), run_id, status, result, error)

    async def _run_row(self, source: Source) -> uuid.UUID:
        seed = int((self.spec.world or {}).get("seed", 0))
        row = await self.pool().fetchrow(
            q("emulator_create_replay"), seed, len(source.conversations), self.spec.concurrency,
            self.emulator.url, source.about,
        )  # fmt: skip
        run_id: uuid.UUID = row["id"]
        for arm in ARMS:
            await self.pool().execute(q("teacher_set_emulator_run"), self.exp_id, arm, run_id)
        return run_id

    def _questions(self, source: Source) -> list[Any]:
        """The conversations with only the questions of the asked half (or all)."""
        keep, most = self.spec.questions, self.spec.max_questions
        out = []
        for c in source.conversations:
            chosen = [x for x in c.questions if keep == "all" or half(x, c.conversation_id) == keep]
            if most and len(chosen) > most:  # a seeded sample, the same in every trial
                chosen = random.Random(f"{c.conversation_id}:{keep}").sample(chosen, most)
            out.append(dataclasses.replace(c, questions=tuple(chosen)))
        return out

    async def _stored(
        self, replay: Replay, source: Source
    ) -> tuple[dict[str, list[Stored]], bool, bool]:
        """{arm: histories}: shared when both arms store the same way; else one import per arm,
        each with its threads pinned to its version."""
        params = {arm: p for arm, (_v, p) in self.versions.items()}
        if archivist(params["baseline"]) == archivist(params["variant"]):
            stored, reused = await self.emulator.stored(replay, source, params["baseline"])
            return {arm: stored for arm in ARMS}, False, reused
        out, reused_all = {}, True
        for arm in ARMS:
            version = self.versions[arm][0]

            async def pin(thread_id: str, v: int = version) -> None:
                await self._pin(uuid.UUID(thread_id), "thread", v)

            out[arm], reused = await self.emulator.stored(replay, source, params[arm], pin)
            reused_all = reused_all and reused
        return out, True, reused_all

    async def _ask(self, replay: Replay, stored: dict[str, list[Stored]]) -> None:
        order = list(range(len(stored["baseline"])))
        rng = random.Random(f"{self.seed}:replay-order")
        rng.shuffle(order)
        gate = asyncio.Semaphore(self.spec.concurrency)

        asked = ARMS if self.baseline_from is None else ("variant",)

        async def user(i: int, rank: int) -> None:
            arms = asked if (rank + self.seed) % 2 == 0 else asked[::-1]
            async with gate:
                for arm in arms:
                    if self.stop.is_set():
                        return
                    s = stored[arm][i]
                    await self._pin(uuid.UUID(s.user.user_id), "user", self.versions[arm][0])
                    await replay.ask(s, arm)

        await asyncio.gather(*(user(i, rank) for rank, i in enumerate(order)))

    async def _pin(self, subject: uuid.UUID, kind: str, version: int) -> None:
        async with self.pool().acquire() as conn:
            await tuner.pin(conn, subject, kind, self.exp_id, version)
        self.invalidate()

    async def _unpin(self) -> None:
        try:
            async with self.pool().acquire() as conn:
                await tuner.unpin(conn, self.exp_id)
        finally:
            self.invalidate()


async def arm_data(conn: Any, emulator_run: uuid.UUID, arm: str | None, label: str | None,
                   floor: float, budget: int) -> tuple[ArmData, int]:  # fmt: skip
    """One arm's replayed questions (the sensor's retrievals and costs joined) and how many of
    its runs used another parameter version than the arm's (`label`; those are left out). The
    answers at another budget than `budget` (the replay's other budget) go to `asked_other`."""
    retrieved: dict[str, list[Retrieved]] = {}
    for r in await conn.fetch(q("teacher_replay_retrievals"), emulator_run, arm):
        items = [Retrieved(u, frozenset(s)) for u, s in zip(r["used"], r["sources"], strict=True)]
        retrieved[str(r["run_id"])] = items
    data, wrong = ArmData(abstain_floor=floor), 0
    for r in await conn.fetch(q("teacher_replay_answers"), emulator_run, arm):
        if label is not None and r["param_version"] != label:
            wrong += 1
            continue
        asked = _asked(r, retrieved.get(str(r["run_id"]), []))
        if r["budget"] != budget:
            data.asked_other.append(asked)
            continue
        data.asked.append(asked)
        data.runs.append(RunCost(str(r["user_id"]), None, r["latency_ms"], r["tokens"]))
    return data, wrong


def _asked(r: Any, retrieved: list[Retrieved]) -> Asked:
    return Asked(str(r["run_id"]), str(r["user_id"]), r["conversation"], r["question_id"],
                 r["qtype"], frozenset(r["evidence"]), r["context_hit"], r["top_score"],
                 tuple(retrieved))  # fmt: skip
