"""The pieces a world is made of, before it becomes LoCoMo-format JSON.

A conversation is planned as blocks (a few consecutive lines stating one fact, placed in one
session) and questions whose evidence is named by tags on those lines; composing the sessions
fills the rest with small talk, and numbering the turns turns tags into turn ids.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from selflearn.emulator.world.vocab import Vocab

# Our question types and the LoCoMo category each is scored as (1 multi-hop, 2 temporal,
# 3 open-domain, 4 single-hop, 5 adversarial / unanswerable).
TYPES: dict[str, int] = {
    "single_fact": 4,
    "paraphrased": 4,
    "knowledge_update": 4,
    "multi_hop": 1,
    "temporal": 2,
    "preference": 3,
    "unanswerable": 5,
}
CATEGORY_NAMES = {
    1: "multi-hop",
    2: "temporal",
    3: "open-domain",
    4: "single-hop",
    5: "adversarial",
}


@dataclass(frozen=True)
class Line:
    speaker: str
    text: str
    tags: tuple[str, ...] = ()  # evidence this line carries


@dataclass(frozen=True)
class Block:
    """Consecutive lines placed in one session; rendered with that session's date (relative
    dates such as "last Tuesday" depend on it)."""

    session: int
    render: Callable[[datetime], list[Line]]


@dataclass(frozen=True)
class Planned:
    type: str
    question: str
    answer: str | None  # None: unanswerable
    evidence: tuple[str, ...]  # tags; empty for unanswerable
    adversarial: tuple[str, ...] = ()  # unanswerable: the tempting line about someone else
    adversarial_answer: str | None = None


@dataclass
class Person:
    name: str
    domain: str
    kinds: set[str] = field(default_factory=set)  # fact kinds this person states
    values: dict[str, str] = field(default_factory=dict)  # e.g. "pet.species" -> "dog"


@dataclass
class Ctx:
    """One conversation being planned: its random stream, vocabulary and session dates."""

    rng: random.Random
    vocab: Vocab
    dates: list[datetime]
    used: set[str] = field(default_factory=set)
    blocks: list[Block] = field(default_factory=list)
    questions: list[Planned] = field(default_factory=list)
    _tags: int = 0

    @property
    def sessions(self) -> int:
        return len(self.dates)

    def pick(self, key: str, among: tuple[str, ...] | None = None) -> str:
        """A value not used yet in this conversation (values repeat only when all are used)."""
        pool = among if among is not None else self.vocab.words(key)
        fresh = [v for v in pool if v not in self.used] or list(pool)
        value = self.rng.choice(fresh)
        self.used.add(value)
        return value

    def tag(self, what: str) -> str:
        self._tags += 1
        return f"{what}#{self._tags}"

    def session(self, lo: float, hi: float, after: int = -1) -> int:
        """A session index in the share [lo, hi) of the conversation, later than `after` when it
        can be (a tiny world may have to reuse the same session)."""
        n = self.sessions
        low = max(min(int(lo * n), n - 1), min(after + 1, n - 1))
        high = max(min(int(hi * n), n), low + 1)
        return self.rng.randrange(low, high)

    def place(self, session: int, render: Callable[[datetime], list[Line]]) -> None:
        self.blocks.append(Block(session, render))

    def ask(self, planned: Planned) -> None:
        self.questions.append(planned)
