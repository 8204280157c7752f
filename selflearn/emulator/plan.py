"""What the emulator will say: episodes of threads, generated offline from templates + seeds.

An episode is one synthetic user (one persona × scenario) and three threads (dialogs):
  1. the opening request with its goal, then the first half of the facts (and small talk);
  2. back to the topic: the other facts, the facts that change (updates), distractors;
  3. probing questions about the earlier threads (re-asked at run time when the answer missed).
The plan depends only on the seed (each episode has its own random stream), so concurrency and
timing never change what is said; only the follow-ups depend on the answers MaaS gives.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from selflearn.emulator.seeds import Fact, Persona, Question, Scenario

THREADS_PER_EPISODE = 3
_LOWER_FIRST = frozenset(
    ("my", "the", "we", "our", "his", "her", "after", "good", "three", "i'm", "a", "an", "this")
    + ("it", "i've", "so", "no", "yes", "what", "when", "where", "which", "who", "how", "since")
)


@dataclass(frozen=True)
class Turn:
    kind: str  # opening | fact | update | distractor | probe
    text: str
    fact_id: str | None = None  # the fact this turn plants (fact, update)
    question: Question | None = None  # the question this turn asks (probe)
    keep: str | None = None  # words a paraphrase must keep (a planted fact's expected answer)


@dataclass(frozen=True)
class Episode:
    index: int
    persona: Persona
    scenario: Scenario
    threads: tuple[tuple[Turn, ...], ...]

    @property
    def key(self) -> str:
        return f"{self.persona.id}/{self.scenario.id}"


def lower_first(text: str) -> str:
    """'My plot is…' -> 'my plot is…' inside a sentence; names and 'I' keep their capital."""
    first = text.split(" ", 1)[0].lower()
    return text[:1].lower() + text[1:] if first in _LOWER_FIRST else text


def voice(rng: random.Random, persona: Persona, slot: str, **values: str) -> str:
    """One of the persona's templates for `slot`, filled with values and their _lc forms."""
    template = rng.choice(persona.phrasing[slot])
    fills = values | {f"{k}_lc": lower_first(v) for k, v in values.items()}
    return template.format(**fills)


def _chatter(rng: random.Random, persona: Persona, text: str) -> str:
    """Verbose personas add small talk to some turns (verbosity 1: never, 3: two turns in three)."""
    if persona.fillers and rng.random() < (persona.verbosity - 1) / 3:
        return f"{text} {rng.choice(persona.fillers)}"
    return text


def _facts(rng: random.Random, p: Persona, facts: list[tuple[str, Fact]]) -> list[Turn]:
    return [
        Turn(kind, _chatter(rng, p, voice(rng, p, "fact", fact=f.text)), f.id, keep=f.answer)
        for kind, f in facts
    ]


def _plant_threads(rng: random.Random, p: Persona, s: Scenario) -> list[tuple[Turn, ...]]:
    half = (len(s.facts) + 1) // 2
    first = [("fact", f) for f in s.facts[:half]]
    later = [("fact", f) for f in s.facts[half:]] + [("update", u) for u in s.updates]
    opening = Turn("opening", _chatter(rng, p, voice(rng, p, "opener", opening=s.opening)))
    back = Turn("opening", voice(rng, p, "opener", opening=f"Let's continue with {s.topic}."))
    one, two = [opening, *_facts(rng, p, first)], [back, *_facts(rng, p, later)]
    for distractor in s.distractors:
        target = rng.choice((one, two))
        target.insert(rng.randint(1, len(target)), Turn("distractor", distractor))
    return [tuple(one), tuple(two)]


def _probe_thread(rng: random.Random, p: Persona, s: Scenario) -> tuple[Turn, ...]:
    questions = list(s.questions)
    rng.shuffle(questions)
    return tuple(Turn("probe", voice(rng, p, "ask", ask=q.ask), question=q) for q in questions)


def episode(seed: int, index: int, persona: Persona, scenario: Scenario) -> Episode:
    rng = random.Random(f"{seed}:{index}:plan")
    threads = [*_plant_threads(rng, persona, scenario), _probe_thread(rng, persona, scenario)]
    return Episode(index, persona, scenario, tuple(threads))


def plan(
    seed: int, dialogs: int, scenarios: list[Scenario], personas: list[Persona]
) -> list[Episode]:
    """Enough whole episodes for `dialogs` threads (rounded up to whole episodes), pairing
    personas with scenarios in a seeded order; pairs repeat only after all have been used."""
    pairs = [(p, s) for p in personas for s in scenarios]
    random.Random(f"{seed}:pairs").shuffle(pairs)
    count = -(-dialogs // THREADS_PER_EPISODE)
    return [episode(seed, i, *pairs[i % len(pairs)]) for i in range(count)]
