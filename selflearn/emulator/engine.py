"""Play the planned episodes against MaaS over HTTP and measure planted-fact recall.

Each episode is one synthetic user: its planting threads are played and closed, and the next
thread starts only once the archivist has turned the closed one into memories; then the probing
thread asks about the planted facts. A probe is scored from the run's retrieved memories (their
provenance must include a message that planted the fact) and from the reply (does it contain the
expected answer; for abstention, does it decline). Episodes run `concurrency` at a time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from selflearn.emulator import answers
from selflearn.emulator.client import MaasClient, MaasUnavailable, Reply, SyntheticUser
from selflearn.emulator.plan import Episode, Turn, plan, voice
from selflearn.emulator.seeds import Persona, Question, Scenario

log = logging.getLogger(__name__)
_ABSTAINS = re.compile(
    r"don'?t know|do not know|nothing in memory|no record|not sure|never (?:told|mentioned|said)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Config:
    seed: int = 1
    dialogs: int = 100
    concurrency: int = 8
    label: str = "emulator"  # prefix of the synthetic users' names
    paraphrase: bool = False  # rewrite turns in the persona's voice with an LLM


@dataclass(frozen=True)
class Expectation:
    """What the emulator expected from one probing question, and what it got."""

    user_id: str
    run_id: str
    persona: str
    scenario: str
    ability: str
    attempt: int
    question: str
    expected: str
    fact_ids: list[str]
    planted: dict[str, list[int]]
    retrieved: list[str]
    recall_hit: bool | None
    answer_hit: bool
    answer: str


@dataclass
class Tally:
    dialogs: int = 0
    turns: int = 0
    runs: int = 0
    failures: int = 0
    episodes: int = 0
    probes: list[Expectation] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


class Rewriter(Protocol):
    rewritten: int

    async def __call__(self, persona: Persona, text: str, keep: str | None) -> str: ...


class Recorder(Protocol):
    async def progress(self, tally: Tally) -> None: ...

    async def expectation(self, exp: Expectation) -> None: ...


class Stopped(Exception):
    """The run was asked to stop; the episode ends at its next turn."""


@dataclass
class _Episode:
    plan: Episode
    user: SyntheticUser
    rng: random.Random
    planted: dict[str, list[int]] = field(default_factory=dict)

    @property
    def persona(self) -> Persona:
        return self.plan.persona


def answered(question: Question, answer: str, stale: tuple[str, ...] = ()) -> bool:
    """The reply holds the expected answer as whole words (case and punctuation ignored) with
    no replaced value first (emulator.answers), or declines an abstention question."""
    if question.ability == "abstention":
        return bool(_ABSTAINS.search(answer))
    return answers.holds(question.answer, answer, stale)


def stale_answers(scenario: Scenario, question: Question) -> tuple[str, ...]:
    """The values the question's facts replaced (a knowledge update's old value)."""
    facts = {f.id: f for f in scenario.facts + scenario.updates}
    old = (scenario.replaces.get(f) for f in question.facts)
    return tuple(facts[o].answer for o in old if o in facts)


def retrieved_facts(
    question: Question, planted: dict[str, list[int]], sources: list[set[int]]
) -> list[str]:
    """The question's planted facts that some retrieved memory was made from."""
    seen = set().union(*sources) if sources else set()
    return [f for f in question.facts if seen & set(planted.get(f, []))]


class Emulation:
    def __init__(
        self,
        client: MaasClient,
        recorder: Recorder,
        config: Config,
        scenarios: list[Scenario],
        personas: list[Persona],
        stop: asyncio.Event | None = None,
        rewriter: Rewriter | None = None,
    ) -> None:
        self.client = client
        self.rewriter = rewriter
        self.recorder = recorder
        self.config = config
        self.episodes = plan(config.seed, config.dialogs, scenarios, personas)
        self.stop = stop or asyncio.Event()
        self.tally = Tally()

    async def run(self) -> dict[str, Any]:
        started = time.monotonic()
        gate = asyncio.Semaphore(self.config.concurrency)
        await asyncio.gather(*(self._bounded(gate, ep) for ep in self.episodes))
        result = summary(self.tally, time.monotonic() - started, self.stop.is_set())
        if self.rewriter is not None:
            result["paraphrased_turns"] = self.rewriter.rewritten
        return result

    async def _bounded(self, gate: asyncio.Semaphore, ep: Episode) -> None:
        async with gate:
            if self.stop.is_set():
                return
            try:
                await self._episode(ep)
                self.tally.episodes += 1
            except Stopped:
                return
            except MaasUnavailable as exc:  # the episode ends; the others go on
                log.warning("emulator: episode %s ended early: %s", ep.key, exc)
                self.tally.errors[_kind(str(exc))] += 1

    async def _episode(self, ep: Episode) -> None:
        name = f"{self.config.label} {ep.index} {ep.key}"
        user = await self.client.create_user(name[:200])
        state = _Episode(ep, user, random.Random(f"{self.config.seed}:{ep.index}:follow-ups"))
        for turns in ep.threads[:-1]:
            await self._plant_thread(state, turns)
        await self._probe_thread(state, ep.threads[-1])

    async def _say(
        self, state: _Episode, text: str, thread_id: str | None, keep: str | None = None
    ) -> Reply:
        if self.stop.is_set():
            raise Stopped()
        if self.rewriter is not None:
            text = await self.rewriter(state.persona, text, keep)
        self.tally.turns += 1
        try:
            reply = await self.client.chat(state.user, text, thread_id)
        except MaasUnavailable:
            self.tally.failures += 1
            raise
        self.tally.runs += 1 if reply.run_id is not None else 0
        if reply.status != "COMPLETED":
            self.tally.failures += 1
            self.tally.errors[f"run {reply.status}"] += 1
        return reply

    async def _plant_thread(self, state: _Episode, turns: tuple[Turn, ...]) -> None:
        thread_id: str | None = None
        planting: dict[str, str] = {}  # run id -> the fact its message states
        for turn in turns:
            reply = await self._say(state, turn.text, thread_id, turn.keep)
            thread_id = reply.thread_id
            if turn.fact_id and reply.run_id:
                planting[reply.run_id] = turn.fact_id
        assert thread_id is not None
        for message in await self.client.close_and_wait(state.user, thread_id):
            fact = planting.get(message["run_id"] or "") if message["role"] == "user" else None
            if fact:
                state.planted.setdefault(fact, []).append(message["id"])
        await self._dialog_done()

    async def _probe_thread(self, state: _Episode, turns: tuple[Turn, ...]) -> None:
        thread_id: str | None = None
        prefix = ""
        for turn in turns:
            assert turn.question is not None
            thread_id, prefix = await self._probe(state, turn, thread_id, prefix)
        if thread_id is not None:
            await self.client.close(state.user, thread_id)
        await self._dialog_done()

    async def _probe(
        self, state: _Episode, turn: Turn, thread_id: str | None, prefix: str
    ) -> tuple[str | None, str]:
        """Ask; ask again (up to the persona's patience) while the answer misses. Returns the
        thread and what the persona says before its next question (pleased or not)."""
        question, text = turn.question, f"{prefix} {turn.text}".strip()
        assert question is not None
        for attempt in range(1, state.persona.patience + 2):
            reply = await self._say(state, text, thread_id)
            thread_id = reply.thread_id
            if await self._score(state, question, attempt, reply):
                return thread_id, voice(state.rng, state.persona, "on_hit")
            text = voice(state.rng, state.persona, "ask_again", ask=question.ask)
        return thread_id, voice(state.rng, state.persona, "on_miss")

    async def _score(self, state: _Episode, question: Question, attempt: int, reply: Reply) -> bool:
        if reply.run_id is None:
            return False
        sources = await self.client.retrieved_sources(state.user, reply.run_id)
        found = retrieved_facts(question, state.planted, sources)
        exp = Expectation(
            user_id=state.user.user_id,
            run_id=reply.run_id,
            persona=state.persona.id,
            scenario=state.plan.scenario.id,
            ability=question.ability,
            attempt=attempt,
            question=reply.message,
            expected=question.answer,
            fact_ids=list(question.facts),
            planted={f: state.planted.get(f, []) for f in question.facts},
            retrieved=found,
            recall_hit=len(found) == len(question.facts) if question.facts else None,
            answer_hit=answered(
                question, reply.answer, stale_answers(state.plan.scenario, question)
            ),
            answer=reply.answer,
        )
        self.tally.probes.append(exp)
        await self.recorder.expectation(exp)
        return exp.answer_hit

    async def _dialog_done(self) -> None:
        self.tally.dialogs += 1
        await self.recorder.progress(self.tally)


def _kind(error: str) -> str:
    """An error message without its ids, so the summary can count alike errors together."""
    return re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+(\.\d+)?", "#", error)[:120]


def _share(hits: list[bool]) -> float | None:
    return round(sum(hits) / len(hits), 4) if hits else None


def _scores(probes: list[Expectation]) -> dict[str, Any]:
    planted = [p.recall_hit for p in probes if p.recall_hit is not None]
    return {
        "probes": len(probes),
        "planted_fact_recall": _share(planted),
        "answer_accuracy": _share([p.answer_hit for p in probes]),
    }


def summary(tally: Tally, wall_s: float, stopped: bool) -> dict[str, Any]:
    """Scores count each question once (its first asking); re-asks are counted as turns."""
    first = [p for p in tally.probes if p.attempt == 1]
    abilities = sorted({p.ability for p in first})
    return {
        "dialogs": tally.dialogs,
        "turns": tally.turns,
        "runs": tally.runs,
        "failures": tally.failures,
        **_scores(first),
        "probes_with_facts": sum(p.recall_hit is not None for p in first),
        "by_ability": {a: _scores([p for p in first if p.ability == a]) for a in abilities},
        "episodes": tally.episodes,
        "errors": dict(tally.errors.most_common(5)),
        "stopped": stopped,
        "wall_s": round(wall_s, 2),
    }
