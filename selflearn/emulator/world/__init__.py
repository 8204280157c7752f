"""The emulator's world: synthetic users with real-sized, dated histories and the questions a
long-term memory benchmark asks about them, generated offline and deterministically from a seed.

Each synthetic user is a conversation between two people in LoCoMo's format (the format
`maas bench locomo` and `maas emulate --corpus` read): many dated sessions over months, small talk
in each speaker's own hobby vocabulary, facts stated directly, indirectly or across two turns,
facts that change later, events with relative dates, tastes, near misses about other people and
other days; questions of every kind (single fact, paraphrased with no content word of the
statement, multi-hop across sessions, temporal, knowledge update, preference, unanswerable), each
with its evidence turn ids and expected answer. The generator and its vocabulary are versioned;
a world's hash covers both, its size and every line.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from selflearn.emulator.world import kinds
from selflearn.emulator.world.compose import session_dates, session_lines
from selflearn.emulator.world.model import CATEGORY_NAMES, TYPES, Ctx, Line, Person, Planned
from selflearn.emulator.world.vocab import Vocab, load_vocab

GENERATOR = "world-1"
_OPTIONAL = ("instruments", "car", "allergy", "trip")


@dataclass(frozen=True)
class WorldSpec:
    """What world to make: the seed and the size (users; sessions and turns per user)."""

    seed: int = 1
    users: int = 8
    sessions: int = 20
    turns: int = 400  # small talk fills each user's sessions up to about this many turns

    def __post_init__(self) -> None:
        if not (1 <= self.users <= 500 and 1 <= self.sessions <= 200 and 0 <= self.turns <= 20000):
            raise ValueError("world size out of range: users 1-500, sessions 1-200, turns 0-20000")


@dataclass(frozen=True)
class World:
    spec: WorldSpec
    conversations: list[dict[str, Any]]  # LoCoMo format, with our question types
    hash: str
    vocabulary: str  # the vocabulary file's version
    generator: str = GENERATOR

    def describe(self) -> dict[str, Any]:
        """What is stored with every run and experiment that used this world."""
        return {
            "hash": self.hash,
            "generator": self.generator,
            "vocabulary": self.vocabulary,
            **asdict(self.spec),
        }

    def write(self, directory: Path) -> list[Path]:
        """One <conversation id>.json per user (a corpus `maas bench locomo --data` reads)."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for conv in self.conversations:
            path = directory / f"{conv['conversation_id']}.json"
            path.write_text(json.dumps(conv, indent=1, ensure_ascii=False) + "\n")
            paths.append(path)
        return paths


def generate(spec: WorldSpec, vocab: Vocab | None = None) -> World:
    vocab = vocab or load_vocab()
    conversations = [conversation(spec, i, vocab) for i in range(spec.users)]
    canonical = json.dumps(
        {
            "generator": GENERATOR,
            "vocabulary": vocab.digest,
            "spec": asdict(spec),
            "conversations": conversations,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return World(spec, conversations, digest, vocab.version)


def conversation(spec: WorldSpec, index: int, vocab: Vocab) -> dict[str, Any]:
    """One synthetic user's history and questions: its own random stream (seed, index)."""
    ctx = Ctx(random.Random(f"{GENERATOR}:{spec.seed}:{index}"), vocab, [])
    ctx.dates = session_dates(ctx.rng, spec.sessions)
    domains = ctx.rng.sample(sorted(vocab.raw["domains"]), 2)
    people = (Person(ctx.pick("names"), domains[0]), Person(ctx.pick("names"), domains[1]))
    _plan_facts(ctx, *people)
    sessions = _sessions(ctx, spec, people)
    ids = {tag: t["turn_id"] for s in sessions for t in s["turns"] for tag in t.pop("tags")}
    cid = f"world{spec.seed}-u{index:03d}"
    questions = [_question(cid, n, p, ids) for n, p in enumerate(_shuffled(ctx))]
    return {
        "conversation_id": cid,
        "source": {
            "dataset": "MaaS emulator world",
            "generator": GENERATOR,
            "vocabulary": vocab.version,
            "seed": spec.seed,
            "index": index,
        },
        "speakers": [p.name for p in people],
        "sessions": sessions,
        "questions": questions,
    }


def _plan_facts(ctx: Ctx, main: Person, friend: Person) -> None:
    """The main speaker states nearly everything; the friend a few of the same kinds (near
    misses, and questions about them too); each lacks something the other has (unanswerable)."""
    rng = ctx.rng
    skipped = rng.sample(_OPTIONAL, rng.randint(1, 2))
    kinds.pet(ctx, main, friend, True)
    kinds.job(ctx, main, friend, True, update=rng.random() < 0.6)
    kinds.home(ctx, main, friend, True)
    kinds.relative(ctx, main, friend, True)
    kinds.events(ctx, main, friend, True)
    kinds.tastes(ctx, main, friend, True)
    for name in _OPTIONAL:
        if name not in skipped:
            _optional(ctx, name, main, friend)
    kinds.pet(ctx, friend, main, True)
    kinds.job(ctx, friend, main, True, update=False)
    kinds.events(ctx, friend, main, True, count=1)
    kinds.tastes(ctx, friend, main, False)
    for name in skipped:
        _optional(ctx, name, friend, main)
    _unanswerable(ctx, main, friend)
    _unanswerable(ctx, friend, main)


def _optional(ctx: Ctx, name: str, x: Person, y: Person) -> None:
    if name == "instruments":
        kinds.instruments(ctx, x, y, True)
    elif name == "car":
        kinds.car(ctx, x, y, True, update=ctx.rng.random() < 0.5)
    elif name == "allergy":
        kinds.allergy(ctx, x, y, True)
    else:
        kinds.trip(ctx, x, y, True)


_ABSENT = {
    "instrument": ("Which instrument is {x} learning?", "instrument"),
    "allergy": ("What is {x} allergic to?", "allergy"),
    "trip": ("Where is {x} going on holiday?", "trip"),
}


def _unanswerable(ctx: Ctx, x: Person, y: Person) -> None:
    """Questions about x that only y's facts seem to answer (LoCoMo's adversarial kind)."""
    for kind in sorted(y.kinds - x.kinds):
        if kind.startswith("pet:"):
            species = kind.split(":", 1)[1]
            ctx.ask(
                Planned(
                    "unanswerable",
                    f"What is the name of {x.name}'s {species}?",
                    None,
                    (),
                    adversarial_answer=y.values.get("pet.name"),
                )
            )
        elif kind in _ABSENT:
            text, key = _ABSENT[kind]
            ctx.ask(
                Planned(
                    "unanswerable",
                    text.format(x=x.name),
                    None,
                    (),
                    adversarial_answer=y.values.get(key),
                )
            )


def _sessions(ctx: Ctx, spec: WorldSpec, people: tuple[Person, Person]) -> list[dict[str, Any]]:
    out = []
    per = spec.turns / spec.sessions
    for i, at in enumerate(ctx.dates):
        blocks = [b for b in ctx.blocks if b.session == i]
        target = max(int(per + ctx.rng.uniform(-3, 3)), 4)
        lines = session_lines(ctx, i, people, blocks, target)
        out.append(
            {
                "session_id": f"session_{i + 1}",
                "date_time": f"{at.strftime('%-I:%M %p').lower()} on {at.day} {at.strftime('%B')}, "
                f"{at.year}",
                "date_time_iso": at.strftime("%Y-%m-%dT%H:%M"),
                "turns": [_turn(i, j, ln) for j, ln in enumerate(lines)],
            }
        )
    return out


def _turn(session: int, j: int, line: Line) -> dict[str, Any]:
    return {
        "turn_id": f"D{session + 1}:{j + 1}",
        "speaker": line.speaker,
        "text": line.text,
        "tags": list(line.tags),
    }


def _shuffled(ctx: Ctx) -> list[Planned]:
    questions = list(ctx.questions)
    ctx.rng.shuffle(questions)
    return questions


def _question(cid: str, n: int, p: Planned, ids: dict[str, str]) -> dict[str, Any]:
    category = TYPES[p.type]
    out: dict[str, Any] = {
        "question_id": f"{cid}:q{n:03d}",
        "question": p.question,
        "answer": p.answer,
        "category": category,
        "category_name": CATEGORY_NAMES[category],
        "type": p.type,
        "evidence": [ids[t] for t in p.evidence],
    }
    if p.adversarial_answer is not None:
        out["adversarial_answer"] = p.adversarial_answer
    return out
