"""A synthetic memory corpus: facts to preload and questions whose answers they hold."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from maas.memory.store import fact_key

PEOPLE = (
    "Caroline", "Melanie", "Jonas", "Priya", "Tomasz", "Aiko", "Mateo", "Fatima", "Liam",
    "Sofia", "Noah", "Grace", "Ravi", "Elena", "Kwame", "Hannah", "Diego", "Mei", "Oscar",
    "Amara", "Felix", "Ingrid", "Yusuf", "Chloe", "Bruno", "Nadia", "Hugo", "Leila",
)  # fmt: skip
RELATIONS = (
    "sister", "brother", "cousin", "neighbour", "colleague", "best friend", "aunt", "uncle",
    "manager", "roommate", "mentor", "niece",
)  # fmt: skip
CITIES = (
    "Porto", "Lisbon", "Kyoto", "Toronto", "Nairobi", "Austin", "Berlin", "Oaxaca", "Edinburgh",
    "Melbourne", "Seoul", "Valparaiso", "Reykjavik", "Marrakesh", "Denver", "Hanoi", "Krakow",
)  # fmt: skip
PLACES = (
    "the farmers market", "Lake Tahoe", "the botanical garden", "Central Park",
    "the climbing gym", "Yosemite", "the jazz club downtown", "the public library",
    "Brighton beach", "the night market", "the old harbour", "the community pool",
)  # fmt: skip
HOBBIES = (
    "rock climbing", "pottery", "salsa dancing", "birdwatching", "chess", "trail running",
    "sourdough baking", "watercolor painting", "surfing", "knitting", "photography", "kayaking",
    "woodworking", "bouldering", "choir singing",
)  # fmt: skip
JOBS = (
    "nurse", "software engineer", "baker", "architect", "high school teacher", "veterinarian",
    "electrician", "pharmacist", "graphic designer", "firefighter", "accountant",
    "marine biologist", "translator", "paramedic",
)  # fmt: skip
FOODS = (
    "ramen", "pad thai", "lasagna", "mango sticky rice", "falafel", "pierogi", "tacos al pastor",
    "butter chicken", "sushi", "shakshuka", "pho", "paella", "dumplings", "moussaka",
)  # fmt: skip
PET_KINDS = (
    "golden retriever", "tabby cat", "parrot", "rabbit", "beagle", "corgi", "hamster",
    "tortoise", "border collie", "siamese cat",
)  # fmt: skip
PET_NAMES = (
    "Biscuit", "Luna", "Pepper", "Mochi", "Ziggy", "Olive", "Rocket", "Bean", "Juniper",
    "Waffles", "Nacho", "Pixel",
)  # fmt: skip


@dataclass(frozen=True)
class Fact:
    """A memory to preload and a question whose answer it holds."""

    text: str
    question: str
    event_time: datetime | None
    importance: float


def _day(rng: random.Random) -> datetime:
    start = datetime(2019, 1, 1, 12, tzinfo=UTC)
    return start + timedelta(days=rng.randrange(7 * 365))


def _job(rng: random.Random) -> tuple[str, str, datetime | None]:
    p, rel, job, city = (rng.choice(x) for x in (PEOPLE, RELATIONS, JOBS, CITIES))
    return f"My {rel} {p} works as a {job} in {city}.", f"What does {p} do for work?", None


def _food(rng: random.Random) -> tuple[str, str, datetime | None]:
    p, food, place = rng.choice(PEOPLE), rng.choice(FOODS), rng.choice(PLACES)
    text = f"{p} loves {food}, especially the one from the stall near {place}."
    return text, f"What food does {p} love?", None


def _pet(rng: random.Random) -> tuple[str, str, datetime | None]:
    kind, name, when = rng.choice(PET_KINDS), rng.choice(PET_NAMES), _day(rng)
    text = f"I adopted a {kind} named {name} in {when:%B %Y}."
    return text, f"What is the name of my {kind}?", when


def _outing(rng: random.Random) -> tuple[str, str, datetime | None]:
    p, hobby, place, when = rng.choice(PEOPLE), rng.choice(HOBBIES), rng.choice(PLACES), _day(rng)
    text = f"{p} and I went {hobby} at {place} on {when:%B %d, %Y}."
    return text, f"When did I go {hobby} with {p}?", when


def _birthday(rng: random.Random) -> tuple[str, str, datetime | None]:
    p, rel, when = rng.choice(PEOPLE), rng.choice(RELATIONS), _day(rng)
    text = f"My {rel} {p} has a birthday on {when:%B} {when.day}."
    return text, f"When is {p}'s birthday?", None


def _move(rng: random.Random) -> tuple[str, str, datetime | None]:
    city, job, when = rng.choice(CITIES), rng.choice(JOBS), _day(rng)
    text = f"I moved to {city} in {when:%B %Y} to start a job as a {job}."
    return text, f"When did I move to {city}?", when


def _lessons(rng: random.Random) -> tuple[str, str, datetime | None]:
    hobby, rel, p, when = rng.choice(HOBBIES), rng.choice(RELATIONS), rng.choice(PEOPLE), _day(rng)
    text = f"I started {hobby} lessons in {when.year} together with my {rel} {p}."
    return text, f"Who do I take {hobby} lessons with?", when


def _trip(rng: random.Random) -> tuple[str, str, datetime | None]:
    p, city, food = rng.choice(PEOPLE), rng.choice(CITIES), rng.choice(FOODS)
    text = f"{p} is planning a trip to {city} and wants to try the local {food}."
    return text, f"Where is {p} travelling to?", None


TEMPLATES: tuple[Callable[[random.Random], tuple[str, str, datetime | None]], ...] = (
    _job, _food, _pet, _outing, _birthday, _move, _lessons, _trip,
)  # fmt: skip


def make_facts(count: int, seed: int = 7) -> list[Fact]:
    """`count` distinct facts (distinct fact keys) from the templates, deterministic per seed.

    Stops early, with fewer facts, if the templates cannot produce that many distinct ones.
    """
    rng = random.Random(seed)  # noqa: S311 (not for security)
    facts: dict[str, Fact] = {}
    tries = 0
    while len(facts) < count and tries < count * 20 + 100:
        tries += 1
        text, question, when = rng.choice(TEMPLATES)(rng)
        importance = round(rng.uniform(0.2, 0.9), 2)
        facts.setdefault(fact_key(text), Fact(text, question, when, importance))
    return list(facts.values())


def make_questions(facts: Sequence[Fact], count: int, seed: int = 11) -> list[str]:
    """Questions about random preloaded facts (or about invented ones when there are none)."""
    pool = list(facts) or make_facts(50, seed)
    rng = random.Random(seed)  # noqa: S311 (not for security)
    return [rng.choice(pool).question for _ in range(count)]
