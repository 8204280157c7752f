"""Sessions: dated, two speakers taking turns, the planned fact blocks among small talk."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from selflearn.emulator.world.model import Block, Ctx, Line, Person
from selflearn.emulator.world.words import WEEKDAYS


def session_dates(rng: random.Random, n: int) -> list[datetime]:
    """n sessions 4–14 days apart from a day in 2023, each at some hour of the day."""
    at = datetime(2023, 1, 1) + timedelta(days=rng.randrange(365))
    dates = []
    for i in range(n):
        at = at + timedelta(days=rng.randint(4, 14)) if i else at
        dates.append(at.replace(hour=rng.randint(8, 21), minute=rng.randrange(60)))
    return dates


def _fill(ctx: Ctx, template: str, people: tuple[Person, Person]) -> str:
    """A template's slots filled with random values (the other speaker's name for {other}; a
    third person for {third}; any pet, city, food … for near misses about other people)."""
    rng, v = ctx.rng, ctx.vocab
    species = rng.choice(sorted(v.raw["pets"]))
    event = rng.choice(v.raw["events"])
    return template.format(
        weekday=rng.choice(WEEKDAYS),
        weather=rng.choice(v.words("weather")),
        show=rng.choice(v.words("shows")),
        cuisine=rng.choice(v.words("cuisines")),
        book_topic=rng.choice(v.words("book_topics")),
        color=rng.choice(v.words("colors")),
        other=people[1].name,
        third=third_party(ctx, people),
        species=species,
        breed=rng.choice(v.raw["pets"][species]),
        pet=rng.choice(v.words("pet_names")),
        employer=rng.choice(v.words("employers")),
        role=rng.choice(v.words("roles")),
        city=rng.choice(v.words("cities")),
        food=rng.choice(v.words("foods")),
        genre=rng.choice(v.words("genres")),
        drink=rng.choice(v.words("drinks")),
        instrument=rng.choice(v.words("instruments")),
        allergen=rng.choice(v.words("allergens")),
        destination=rng.choice(v.words("destinations")),
        month=rng.choice(v.words("months")),
        car=rng.choice(v.words("cars")),
        event_past=event["past"].replace(" my ", " their "),
        event_gerund=event["gerund"],
    )


def third_party(ctx: Ctx, people: tuple[Person, Person]) -> str:
    """'my coworker Bruno': someone who is neither speaker."""
    name = ctx.rng.choice(
        [n for n in ctx.vocab.words("names") if n not in {p.name for p in people}]
    )
    return ctx.rng.choice(ctx.vocab.words("third_parties")).format(name=name).rstrip(",")


def _sentence(ctx: Ctx, who: Person, people: tuple[Person, Person]) -> str:
    rng, v = ctx.rng, ctx.vocab
    pick = rng.random()
    if pick < 0.25:
        return (
            f"{rng.choice(v.words('times'))} I {rng.choice(v.words('activities'))} "
            f"{rng.choice(v.words('companions'))}, {rng.choice(v.words('outcomes'))}."
        )
    if pick < 0.33:
        return f"Honestly, {rng.choice(v.words('things'))} is {rng.choice(v.words('judgements'))}."
    if pick < 0.41:
        return f"I'm thinking about {rng.choice(v.words('plans'))} next year."
    if pick < 0.6:
        template = rng.choice(v.raw["domains"][who.domain])
    elif pick < 0.75:
        template = rng.choice(v.words("chitchat"))
    else:
        template = rng.choice(v.raw["near_misses"][rng.choice(sorted(v.raw["near_misses"]))])
    return _cap(_fill(ctx, template, people))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def small_talk(ctx: Ctx, who: Person, other: Person) -> str:
    """One turn of small talk: one to three sentences about the speaker's day, hobby (their
    persona's vocabulary), opinions, plans, or other people's pets, jobs, trips (near misses);
    sometimes just a reaction."""
    rng = ctx.rng
    if rng.random() < 0.15:
        return rng.choice(ctx.vocab.words("replies"))
    count = rng.choices((1, 2, 3, 4), weights=(1, 3, 4, 2))[0]
    return " ".join(_sentence(ctx, who, (who, other)) for _ in range(count))


def session_lines(
    ctx: Ctx, index: int, people: tuple[Person, Person], blocks: list[Block], target: int
) -> list[Line]:
    """The blocks of this session in a seeded order among small talk, speakers alternating (a
    reply is put in front of a block that would make someone speak twice in a row)."""
    rng, at = ctx.rng, ctx.dates[index]
    first, second = people if rng.random() < 0.5 else people[::-1]
    lines = [
        Line(first.name, _fill(ctx, rng.choice(ctx.vocab.words("openers")), (first, second))),
        Line(second.name, small_talk(ctx, second, first)),
    ]
    units: list[list[Line] | None] = [b.render(at) for b in blocks]
    room = target - 3 - sum(len(u) for u in units if u)
    units += [None] * max(room, 0)  # None: a turn of small talk by whoever speaks next
    rng.shuffle(units)
    for unit in units:
        _append(ctx, lines, people, unit)
    closer = rng.choice(ctx.vocab.words("closers"))
    _append(ctx, lines, people, None)
    speaker = _other(people, lines[-1].speaker)
    lines.append(Line(speaker.name, closer))
    return lines


def _other(people: tuple[Person, Person], name: str) -> Person:
    return people[1] if people[0].name == name else people[0]


def _append(
    ctx: Ctx, lines: list[Line], people: tuple[Person, Person], unit: list[Line] | None
) -> None:
    nxt = _other(people, lines[-1].speaker)
    if unit is None:
        lines.append(Line(nxt.name, small_talk(ctx, nxt, _other(people, nxt.name))))
        return
    if unit[0].speaker == lines[-1].speaker:
        lines.append(Line(nxt.name, ctx.rng.choice(ctx.vocab.words("replies"))))
    lines.extend(unit)
