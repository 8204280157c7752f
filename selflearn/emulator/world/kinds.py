"""The facts people state in a world, and the questions asked about them.

Each kind places its statement lines in sessions (directly, indirectly, or spread over two turns
with the other speaker in between), near misses about other people (a coworker's dog, a cousin
who ran the same race on another day), and asks questions whose evidence is the tagged lines.
Person x states the fact; y is the other speaker.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from selflearn.emulator.world.model import Ctx, Line, Person, Planned
from selflearn.emulator.world.words import article, cap, day, shares_content, when


def reply(ctx: Ctx, y: Person) -> Line:
    return Line(y.name, ctx.rng.choice(ctx.vocab.words("replies")))


def third(ctx: Ctx) -> str:
    """'my coworker Bruno' (a name not used yet in this conversation)."""
    name = ctx.pick("names")
    return ctx.rng.choice(ctx.vocab.words("third_parties")).format(name=name).rstrip(",")


def _paraphrase(
    ctx: Ctx, templates: list[str], statements: list[str], names: frozenset[str]
) -> str | None:
    """The first template (in a seeded order) sharing no content word with the statements."""
    order = list(templates)
    ctx.rng.shuffle(order)
    return next((t for t in order if not shares_content(t, statements, names)), None)


def _names(x: Person, y: Person) -> frozenset[str]:
    return frozenset({x.name.lower(), y.name.lower()})


def _static(lines: list[Line]) -> Callable[[datetime], list[Line]]:
    return lambda _at: lines


# ---- pets --------------------------------------------------------------------------------------

_PET_NEAR = [
    "{third} got a {breed} too, it's called {pet}.",
    "{third} asked me to feed their {species} {pet} while they're away.",
    "The {species} next door, {pet}, keeps getting into our garden.",
    "{third} is fostering a {breed} named {pet} from the shelter.",
    "We met a {breed} called {pet} at the park, so friendly.",
    "I keep sending you {species} videos, sorry, {pet} the {breed} is my favourite.",
]


def pet(ctx: Ctx, x: Person, y: Person, ask: bool) -> None:
    species = ctx.pick("pets", tuple(s for s in ctx.vocab.raw["pets"] if s not in ctx.used))
    breed = ctx.pick("breeds", tuple(ctx.vocab.raw["pets"][species]))
    name = ctx.pick("pet_names")
    x.kinds.add(f"pet:{species}")
    x.values.update({"pet.species": species, "pet.name": name, "pet.breed": breed})
    t1, t2 = ctx.tag("pet"), ctx.tag("pet")
    style = ctx.rng.randrange(4)
    s = ctx.session(0.0, 0.6)
    if style == 0:
        text = ctx.rng.choice(
            (
                f"We adopted {article(breed)} from the shelter and named her {name}.",
                f"Meet {name}, my new {breed}! She came home on Saturday.",
                f"I finally got {article(species)}: a little {breed} called {name}.",
            )
        )
        lines = [Line(x.name, text, (t1,)), reply(ctx, y)]
    elif style == 1:  # indirect: the species is never said
        text = ctx.rng.choice(
            (
                f"{name} chewed through my favourite slippers, such a {breed} thing to do.",
                f"{name} refuses to walk in the rain, the vet says {breed}s are like that.",
            )
        )
        lines = [Line(x.name, text, (t1,)), reply(ctx, y)]
    elif style == 2:  # across two turns: the name comes after the other speaker's question
        lines = [
            Line(x.name, f"Big news, we brought {article(species)} home from the shelter!", (t1,)),
            Line(y.name, "No way! What did you call the little one?"),
            Line(x.name, f"{name}. She is {article(breed)} with enormous ears.", (t2,)),
        ]
    else:  # said by the other speaker, to x
        text = ctx.rng.choice(
            (
                f"Give {name} a scratch from me, your {breed} is the cutest.",
                f"I still laugh at that photo of {name}, your {breed} has so much attitude.",
            )
        )
        lines = [Line(y.name, text, (t1,)), Line(x.name, "Ha, she really does.")]
    evidence = (t1, t2) if style == 2 else (t1,)
    statements = [ln.text for ln in lines if ln.tags]
    ctx.place(s, _static(lines))
    later = ctx.session(0.3, 1.0, after=s)
    mention = ctx.rng.choice(
        (
            f"{name} has been sleeping on my laptop all day.",
            f"I had to take {name} to the vet, just a check-up.",
        )
    )
    ctx.place(later, _static([Line(x.name, mention), reply(ctx, y)]))
    breeds = tuple(ctx.vocab.raw["pets"][species])
    for template in ctx.rng.sample(_PET_NEAR, 5):
        text = template.format(
            third=cap(third(ctx)),
            breed=ctx.rng.choice(breeds),
            species=species,
            pet=ctx.pick("pet_names"),
        )
        ctx.place(ctx.session(0.0, 1.0), _static([Line(x.name, text), reply(ctx, y)]))
    if not ask:
        return
    ctx.ask(Planned("single_fact", f"What is the name of {x.name}'s {species}?", name, evidence))
    if style != 2:
        ctx.ask(Planned("single_fact", f"What breed is {x.name}'s {species}?", breed, (t1,)))
    syn = ctx.rng.choice(tuple(ctx.vocab.raw["lexicon"][species]))
    asked = _paraphrase(
        ctx,
        [
            f"What does {x.name}'s {syn} answer to?",
            f"How is {x.name}'s {syn} called at home?",
            f"What do they shout when {x.name}'s {syn} runs off?",
        ],
        statements,
        _names(x, y),
    )
    if asked:
        ctx.ask(Planned("paraphrased", asked, name, evidence))


# ---- work --------------------------------------------------------------------------------------

_JOB_NEAR = [
    "{third} just started as a {role} at {employer}.",
    "{third} works as a {role}, the hours sound awful.",
    "I had coffee with someone from {employer}, they want to hire a {role}.",
    "{third} left {mine} last year to work at {employer}.",
    "{third} is interviewing for a {role} job at {employer}.",
]


def job(ctx: Ctx, x: Person, y: Person, ask: bool, update: bool) -> None:
    role, employer = ctx.pick("roles"), ctx.pick("employers")
    x.kinds.add("job")
    x.values.update({"job.role": role, "job.employer": employer})
    t1 = ctx.tag("job")
    told = ctx.rng.random() < 0.3  # said by the other speaker, to x
    mine = (
        f"I started a new job as {article(role)} at {employer}.",
        f"I start at {employer} on Monday, they hired me as {article(role)}!",
        f"Being {article(role)} at {employer} is harder than I thought.",
    )
    yours = (
        f"I still can't believe you're {article(role)} at {employer} now, so proud of you.",
        f"You must be the busiest {role} {employer} has ever hired.",
    )
    text = ctx.rng.choice(yours if told else mine)
    s = ctx.session(0.0, 0.4)
    if told:
        ctx.place(s, _static([Line(y.name, text, (t1,)), Line(x.name, "Thanks, it's a lot.")]))
    else:
        ctx.place(s, _static([Line(x.name, text, (t1,)), reply(ctx, y)]))
    ctx.place(
        ctx.session(0.0, 1.0, after=s),
        _static(
            [
                Line(x.name, f"Work at {employer} was chaos today, the printer caught fire."),
                reply(ctx, y),
            ]
        ),
    )
    for template in ctx.rng.sample(_JOB_NEAR, 4):
        text = template.format(
            third=cap(third(ctx)),
            role=ctx.pick("roles"),
            employer=ctx.pick("employers"),
            mine=employer,
        )
        ctx.place(ctx.session(0.0, 1.0), _static([Line(x.name, text), reply(ctx, y)]))
    names = _names(x, y)
    if update:
        role2, employer2 = ctx.pick("roles"), ctx.pick("employers")
        t2 = ctx.tag("job")
        text2 = ctx.rng.choice(
            (
                f"I handed in my notice at {employer} and took {article(role2)} position at "
                f"{employer2}.",
                f"New chapter: I left {employer}, I'm {article(role2)} at {employer2} now.",
            )
        )
        ctx.place(
            ctx.session(0.6, 1.0, after=s), _static([Line(x.name, text2, (t2,)), reply(ctx, y)])
        )
        x.values["job.employer"] = employer2
        if ask:
            ctx.ask(Planned("knowledge_update", f"Where does {x.name} work now?", employer2, (t2,)))
            ctx.ask(
                Planned(
                    "multi_hop", f"Where did {x.name} work before {employer2}?", employer, (t1, t2)
                )
            )
        return
    if not ask:
        return
    ctx.ask(Planned("single_fact", f"Where does {x.name} work?", employer, (t1,)))
    ctx.ask(Planned("single_fact", f"What does {x.name} do for a living?", role, (t1,)))
    asked = _paraphrase(
        ctx,
        [
            f"Which company pays {x.name}'s salary?",
            f"What is {x.name}'s profession?",
            f"Which organisation is {x.name} on the payroll of?",
        ],
        [text],
        names,
    )
    if asked:
        answer = role if "profession" in asked else employer
        ctx.ask(Planned("paraphrased", asked, answer, (t1,)))


# ---- home --------------------------------------------------------------------------------------


_HOME_NEAR = [
    "{third} is moving to {city}, I'm a bit jealous.",
    "{third} lives in {city} now and keeps inviting me over.",
    "We might spend a weekend in {city}, the old town looks lovely.",
    "{third} grew up in {city} and never stops talking about it.",
    "Flats in {city} are so cheap compared to here.",
]


def home(ctx: Ctx, x: Person, y: Person, ask: bool) -> None:
    city, city2 = ctx.pick("cities"), ctx.pick("cities")
    x.kinds.add("home")
    x.values["home.city"] = city2
    t1, t2 = ctx.tag("home"), ctx.tag("home")
    s1 = ctx.session(0.0, 0.35)
    first = ctx.rng.choice(
        (
            f"We finally moved to {city}, the flat is tiny but bright.",
            f"I live in {city} now, right by the river.",
            f"Still getting lost on the tram lines here in {city}.",
        )
    )
    ctx.place(s1, _static([Line(x.name, first, (t1,)), reply(ctx, y)]))
    second = ctx.rng.choice(
        (
            f"Big change: we packed everything up and moved to {city2}.",
            f"I live in {city2} now, the move took all week.",
            f"Our new place in {city2} has a balcony, finally!",
        )
    )
    ctx.place(
        ctx.session(0.55, 1.0, after=s1), _static([Line(x.name, second, (t2,)), reply(ctx, y)])
    )
    for template in ctx.rng.sample(_HOME_NEAR, 4):
        text = template.format(third=cap(third(ctx)), city=ctx.pick("cities"))
        ctx.place(ctx.session(0.0, 1.0), _static([Line(x.name, text), reply(ctx, y)]))
    if ask:
        ctx.ask(Planned("knowledge_update", f"Which city does {x.name} live in now?", city2, (t2,)))
        ctx.ask(
            Planned(
                "multi_hop", f"Where did {x.name} live before moving to {city2}?", city, (t1, t2)
            )
        )


def relative(ctx: Ctx, x: Person, y: Person, ask: bool) -> None:
    relation, name, city = ctx.pick("relations"), ctx.pick("names"), ctx.pick("cities")
    x.kinds.add("relative")
    t1, t2 = ctx.tag("relative"), ctx.tag("relative")
    s1 = ctx.session(0.0, 0.5)
    ctx.place(
        s1,
        _static(
            [
                Line(x.name, f"My {relation} {name} is staying with us for a few days.", (t1,)),
                reply(ctx, y),
            ]
        ),
    )
    ctx.place(
        ctx.session(0.3, 1.0, after=s1),
        _static(
            [
                Line(
                    x.name, f"{name} just got a place in {city}, I'm helping with the boxes.", (t2,)
                ),
                reply(ctx, y),
            ]
        ),
    )
    if ask:
        ctx.ask(
            Planned("multi_hop", f"Which city did {x.name}'s {relation} move to?", city, (t1, t2))
        )


# ---- dated events ------------------------------------------------------------------------------


_EVENT_NEAR = [
    "I keep thinking about {gerund} again some day.",
    "Someone asked me for tips about {gerund}, funny.",
    "Would you ever {ask}? I'm curious.",
    "I told my parents about {gerund}, they were surprised.",
]


def events(ctx: Ctx, x: Person, y: Person, ask: bool, count: int = 2) -> None:
    pool: list[dict[str, str]] = [e for e in ctx.vocab.raw["events"] if e["past"] not in ctx.used]
    chosen = ctx.rng.sample(pool, count)
    dated: list[tuple[dict[str, str], str, int]] = []
    for event in chosen:
        ctx.used.add(event["past"])
        x.kinds.add("event")
        tag, s = ctx.tag("event"), ctx.session(0.0, 1.0)
        dated.append((event, tag, s))
        ctx.place(s, _event(ctx, x, y, event, tag, ask))
        for _ in range(2):
            ctx.place(ctx.session(0.0, 1.0), _event(ctx, x, y, event, None, False, third(ctx)))
        for template in ctx.rng.sample(_EVENT_NEAR, 2):
            ctx.place(
                ctx.session(0.0, 1.0),
                _static(
                    [
                        Line(x.name, template.format(gerund=event["gerund"], ask=event["ask"])),
                        reply(ctx, y),
                    ]
                ),
            )
    if ask and len(dated) == 2 and dated[0][2] != dated[1][2]:
        (e1, t1, s1), (e2, t2, s2) = sorted(dated, key=lambda d: d[2])
        ctx.ask(
            Planned(
                "temporal",
                f"Which came first for {x.name}: {e2['gerund']} or {e1['gerund']}?",
                e1["gerund"],
                (t1, t2),
            )
        )


def _event(
    ctx: Ctx,
    x: Person,
    y: Person,
    event: dict[str, str],
    tag: str | None,
    ask: bool,
    who: str | None = None,
) -> Callable[[datetime], list[Line]]:
    """The event said with a relative date; the question's answer is computed when the session's
    date is known (a near miss: someone else did the same thing on another day)."""
    rng = ctx.rng
    form = rng.randrange(2)

    def render(at: datetime) -> list[Line]:
        phrase, date = when(rng, at)
        if who is None:
            text = f"{cap(phrase)} I {event['past']}!" if form else f"I {event['past']} {phrase}."
        else:
            past = event["past"].replace(" my ", " their ")
            text = f"{cap(who)} {past} {phrase}."
        if ask and tag is not None:
            ctx.ask(Planned("temporal", f"When did {x.name} {event['ask']}?", day(date), (tag,)))
        return [Line(x.name, text, (tag,) if tag else ()), reply(ctx, y)]

    return render


# ---- tastes, skills, health, travel ------------------------------------------------------------


def tastes(ctx: Ctx, x: Person, y: Person, ask: bool) -> None:
    food, genre, drink = ctx.pick("foods"), ctx.pick("genres"), ctx.pick("drinks")
    x.kinds.add("tastes")
    tags = [ctx.tag("taste") for _ in range(3)]
    said = [
        ctx.rng.choice(
            (
                f"I can't stand {food}, it ruins any dish for me.",
                f"Please never put {food} in anything you cook me, yuck.",
            )
        ),
        ctx.rng.choice(
            (
                f"I've had {genre} playing nonstop while I work.",
                f"Honestly {genre} is the only thing that calms me down.",
            )
        ),
        ctx.rng.choice(
            (
                f"My morning isn't complete without {article(drink)}.",
                f"I'm trying to cut down, but I had three cups of {drink} today.",
            )
        ),
    ]
    for text, tag in zip(said, tags, strict=True):
        ctx.place(ctx.session(0.0, 1.0), _static([Line(x.name, text, (tag,)), reply(ctx, y)]))
    if ask:
        ctx.ask(
            Planned(
                "preference",
                f"Which ingredient should a cook leave out when making dinner for {x.name}?",
                food,
                (tags[0],),
            )
        )
        ctx.ask(
            Planned(
                "preference",
                f"What kind of tunes would {x.name} enjoy at a party?",
                genre,
                (tags[1],),
            )
        )
        ctx.ask(
            Planned(
                "preference", f"What should you order for {x.name} at a café?", drink, (tags[2],)
            )
        )


def instruments(ctx: Ctx, x: Person, y: Person, ask: bool) -> None:
    first, second = ctx.pick("instruments"), ctx.pick("instruments")
    x.kinds.add("instrument")
    x.values["instrument"] = first
    t1, t2 = ctx.tag("instrument"), ctx.tag("instrument")
    s1 = ctx.session(0.0, 0.5)
    ctx.place(
        s1,
        _static(
            [
                Line(
                    x.name, f"I signed up for {first} lessons, my teacher is very patient.", (t1,)
                ),
                reply(ctx, y),
            ]
        ),
    )
    ctx.place(
        ctx.session(0.3, 1.0, after=s1),
        _static(
            [
                Line(x.name, f"I bought a second-hand {second} and I'm teaching myself.", (t2,)),
                reply(ctx, y),
            ]
        ),
    )
    if ask:
        ctx.ask(
            Planned(
                "multi_hop",
                f"Which two instruments is {x.name} learning?",
                f"{first}, {second}",
                (t1, t2),
            )
        )


def car(ctx: Ctx, x: Person, y: Person, ask: bool, update: bool) -> None:
    color, model = ctx.pick("colors"), ctx.pick("cars")
    x.kinds.add("car")
    t1 = ctx.tag("car")
    s1 = ctx.session(0.0, 0.5)
    ctx.place(
        s1,
        _static(
            [
                Line(x.name, f"I finally bought a {color} {model}, no more buses!", (t1,)),
                reply(ctx, y),
            ]
        ),
    )
    if update:
        model2, t2 = ctx.pick("cars"), ctx.tag("car")
        ctx.place(
            ctx.session(0.6, 1.0, after=s1),
            _static(
                [
                    Line(
                        x.name, f"Sold the {model.split()[-1]} and now I drive a {model2}.", (t2,)
                    ),
                    reply(ctx, y),
                ]
            ),
        )
        if ask:
            ctx.ask(
                Planned("knowledge_update", f"What car does {x.name} drive now?", model2, (t2,))
            )
    elif ask:
        ctx.ask(Planned("single_fact", f"What colour is {x.name}'s car?", color, (t1,)))


def allergy(ctx: Ctx, x: Person, y: Person, ask: bool) -> None:
    allergen = ctx.pick("allergens")
    x.kinds.add("allergy")
    x.values["allergy"] = allergen
    tag = ctx.tag("allergy")
    text = f"Turns out I'm allergic to {allergen}, the doctor confirmed it."
    ctx.place(ctx.session(0.0, 1.0), _static([Line(x.name, text, (tag,)), reply(ctx, y)]))
    if not ask:
        return
    ctx.ask(Planned("single_fact", f"What is {x.name} allergic to?", allergen, (tag,)))
    asked = _paraphrase(
        ctx,
        [
            f"What gives {x.name} a bad reaction?",
            f"What must {x.name} stay away from for health reasons?",
        ],
        [text],
        _names(x, y),
    )
    if asked:
        ctx.ask(Planned("paraphrased", asked, allergen, (tag,)))


def trip(ctx: Ctx, x: Person, y: Person, ask: bool) -> None:
    place, month = ctx.pick("destinations"), ctx.rng.choice(ctx.vocab.words("months"))
    x.kinds.add("trip")
    x.values["trip"] = place
    tag = ctx.tag("trip")
    text = ctx.rng.choice(
        (f"We booked flights to {place} for {month}!", f"{month} is sorted: two weeks in {place}.")
    )
    ctx.place(ctx.session(0.0, 1.0), _static([Line(x.name, text, (tag,)), reply(ctx, y)]))
    if not ask:
        return
    ctx.ask(Planned("single_fact", f"Where is {x.name} travelling in {month}?", place, (tag,)))
    asked = _paraphrase(
        ctx,
        [
            f"Where is {x.name} heading on holiday?",
            f"Which destination did {x.name} pick for the vacation?",
        ],
        [text],
        _names(x, y),
    )
    if asked:
        ctx.ask(Planned("paraphrased", asked, place, (tag,)))
