"""archivist.context_mix: a reply's vector leans toward the turn it answers; its text does not."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

from pytest import approx

from maas.agents.archivist import Dialog, archive
from maas.llm.offline import OFFLINE_LABEL, OfflineModel
from maas.params import ParamSet, validate

AT = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
AXES = ("turtles", "strength", "bees")


class WordAxes:
    """One axis per word of AXES a text contains (a third of a unit for none): the direction of a
    vector says which words its text had."""

    name = "axes"

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.calls = 0

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.seen += texts
        self.calls += 1
        return [_axes(t) for t in texts]

    async def warm(self) -> None:
        return None


def _axes(text: str) -> list[float]:
    vec = [1.0 if w in text.lower() else 0.0 for w in AXES] + [0.33]
    norm = math.sqrt(sum(x * x for x in vec))
    return [x / norm for x in vec]


def _row(n: int, speaker: str, content: str) -> dict[str, Any]:
    return {"id": 100 + n, "role": "user", "speaker": speaker, "content": content, "created_at": AT}


DIALOG = Dialog(
    user_id="u",
    thread_id="t",
    messages=[
        _row(1, "Nate", "I adopted three turtles at the pet store this weekend."),
        _row(2, "Joanna", "They make me think of strength and perseverance in hard times."),
        _row(3, "Joanna", "I also started keeping bees on the roof of my flat."),
        _row(4, "Nate", "Do your bees get along with turtles?"),
        _row(5, "Joanna", "They mostly ignore each other, which suits me fine."),
    ],
)


async def _archived(mix: float) -> tuple[dict[int, Any], WordAxes]:
    async def record(call: object) -> None:
        return None

    embedder = WordAxes()
    params = ParamSet("test", validate({"archivist.context_mix": mix}))
    deadline = asyncio.get_running_loop().time() + 30
    made = await archive(OfflineModel(), embedder, DIALOG, params, record, deadline)
    return {m.source_message_ids[0] - 100: m for m in made}, embedder


def _lean(own: list[float], toward: list[float], mix: float) -> list[float]:
    summed = [a + mix * b for a, b in zip(own, toward, strict=True)]
    norm = math.sqrt(sum(x * x for x in summed))
    return [x / norm for x in summed]


async def test_a_reply_leans_toward_the_turn_it_answers_by_the_mix() -> None:
    plain, _ = await _archived(0.0)
    mixed, embedder = await _archived(0.5)
    assert set(plain) == set(mixed) == {1, 2, 3, 5}  # the question holds no fact
    for n in mixed:  # the text is the memory's own either way
        assert mixed[n].text == plain[n].text
    assert "turtles" not in mixed[2].text
    # Joanna's reply to Nate: her own vector plus half of his turn's, renormalised; it now points
    # partly along the turtles' axis.
    nate = DIALOG.messages[0]["content"]
    assert mixed[2].embedding == approx(_lean(_axes(plain[2].text), _axes(nate), 0.5))
    assert mixed[2].embedding[0] > 0.3 and plain[2].embedding == _axes(plain[2].text)
    assert plain[2].embedding[0] == 0.0
    # Her answer to his question (a turn that holds no fact, so no memory of its own).
    question = DIALOG.messages[3]["content"]
    assert mixed[5].embedding == approx(_lean(_axes(plain[5].text), _axes(question), 0.5))
    # Each turn before is embedded once, in the memories' call (batched by length with them).
    assert embedder.seen.count(question) == embedder.seen.count(nate) == 1
    assert embedder.calls == 1
    # The first turn has nothing before it; Joanna's second turn follows her own: unchanged.
    assert mixed[1].embedding == plain[1].embedding
    assert mixed[3].embedding == plain[3].embedding


async def test_off_embeds_nothing_but_the_memories() -> None:
    plain, embedder = await _archived(0.0)
    assert sorted(embedder.seen) == sorted(m.text for m in plain.values())


async def _first_of_slice(before: dict[str, Any] | None) -> tuple[list[float], list[float]]:
    """The vector of the memory of a slice's one message ("a per-turn slice"), with `before` as
    the thread's message before the slice, and its vector alone."""

    async def record(call: object) -> None:
        return None

    reply = _row(2, "Joanna", "They make me think of strength and perseverance in hard times.")
    params = ParamSet("test", validate({"archivist.context_mix": 0.5}))
    deadline = asyncio.get_running_loop().time() + 30
    dialog = Dialog("u", "t", [reply], before)
    (made,) = await archive(OfflineModel(), WordAxes(), dialog, params, record, deadline)
    return made.embedding or [], _axes(made.text)


async def test_a_slices_first_message_leans_toward_the_message_before_the_slice() -> None:
    asked = {**_row(1, "", "Which pets did you adopt this weekend? Turtles?"), "role": "assistant"}
    mixed, own = await _first_of_slice(asked)
    assert mixed == approx(_lean(own, _axes(asked["content"]), 0.5)) and mixed[0] > 0.3
    # not toward an offline answer (MaaS quoting memories back), nor toward one's own turn
    quoted = {**asked, "content": f"{OFFLINE_LABEL} From memory:\n1. Nate: turtles"}
    assert (await _first_of_slice(quoted))[0] == own
    assert (await _first_of_slice(_row(1, "Joanna", "I love turtles.")))[0] == own
    assert (await _first_of_slice(None))[0] == own


async def test_a_reply_carries_the_first_words_of_the_turn_before_as_search_terms() -> None:
    async def record(call: object) -> None:
        return None

    async def made(values: dict[str, Any]) -> dict[int, Any]:
        params = ParamSet("test", validate({"archivist.context_mix": 0.0, **values}))
        deadline = asyncio.get_running_loop().time() + 30
        out = await archive(OfflineModel(), None, DIALOG, params, record, deadline)
        return {m.source_message_ids[0] - 100: m for m in out}

    terms = await made({"archivist.context_terms": 4})
    assert terms[2].context == "I adopted three turtles"  # Nate's turn, its first four words
    assert terms[5].context == "Do your bees get"  # the question before Joanna's answer
    assert terms[1].context is None and terms[3].context is None  # none, or her own turn
    assert "turtles" not in terms[2].text and terms[2].embedding is None  # no embedder here
    off = await made({"archivist.context_terms": 0})
    assert all(m.context is None for m in off.values())
