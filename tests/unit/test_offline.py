"""Offline mode's pure parts: keywords, relative dates, fact extraction, packing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from maas.llm.offline import facts_from, is_fact, keywords, slot_of
from maas.llm.tokens import count_tokens
from maas.llm.types import TranscriptLine
from maas.llm.when import day, resolve
from maas.memory.budget import pack
from maas.memory.search import Candidate
from maas.params import BuiltinParams, defaults

AT = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)


def test_keywords_drop_stopwords_and_rank_names() -> None:
    assert keywords("Where did Caroline go for the LGBTQ support group?", 4) == [
        "caroline",
        "lgbtq",
        "support",
        "group",
    ]


def test_relative_dates_are_resolved_against_the_message_time() -> None:
    assert resolve("I went there yesterday.", AT) == "I went there yesterday (7 May 2023)."
    assert resolve("We met 2 weeks ago", AT) == "We met 2 weeks ago (24 April 2023)"
    assert resolve("last Friday it broke", AT) == "last Friday (5 May 2023) it broke"
    assert resolve("hiking this weekend", AT) == "hiking this weekend (the weekend of 8 May 2023)"
    assert resolve("last year", AT) == "last year (2022)"
    assert resolve("no dates here", AT) == "no dates here"
    assert resolve("yesterday", None) == "yesterday"
    assert day(AT) == "8 May 2023"


def test_fact_filter_and_slots() -> None:
    assert not is_fact("What did you paint?", 3)
    assert not is_fact("Hey Mel!", 3)
    assert is_fact("I painted a sunset.", 3)
    assert slot_of("My favourite colour is green") == "my favourite colour"
    assert slot_of("I moved to Porto last year") == "home"


def line(n: int, speaker: str, text: str) -> TranscriptLine:
    return TranscriptLine(n, "user", speaker, text, AT)


def test_a_long_turn_becomes_several_memories_with_the_same_provenance() -> None:
    params = defaults()
    text = " ".join(f"I visited museum number {i} in the city center today." for i in range(6))
    facts = facts_from(line(3, "Ana", text), None, params)
    assert len(facts) >= 3
    assert all(f.source == [3] and f.text.startswith("Ana: ") for f in facts)
    limit = int(params["archivist.max_memory_words"])
    assert all(len(f.text.split()) <= limit + 1 for f in facts)
    assert "(8 May 2023)" in facts[0].text


def test_a_short_reply_quotes_its_prompt_when_asked_to() -> None:
    params = BuiltinParams({"archivist.context_reply_words": 8})._set
    prev = line(1, "Jon", "Did you finish the marathon?")
    facts = facts_from(line(2, "Gina", "Yes, in four hours flat!"), prev, params)
    assert (
        facts[0].text == 'Gina (to Jon\'s "Did you finish the marathon?"): Yes, in four hours flat!'
    )
    assert facts[0].source == [1, 2]


def cand(i: int, text: str, score: float, when: datetime) -> Candidate:
    return Candidate(i, text, 0.5, when, when, [i], score=score)


def test_packing_respects_the_budget_and_groups_by_date() -> None:
    day1, day2 = datetime(2023, 5, 7, tzinfo=UTC), datetime(2023, 5, 8, tzinfo=UTC)
    cands = [
        cand(1, "Ana: I like tea.", 3.0, day2),
        cand(2, "Ana: " + "very long words " * 40, 2.0, day1),
        cand(3, "Ana: I have a cat.", 1.0, day1),
    ]
    packed = pack(cands, 30, True, "cl100k_base")
    assert packed.used_ids == {1, 3}  # the long one does not fit, the smaller later one does
    assert packed.text == "7 May 2023:\nAna: I have a cat.\n8 May 2023:\nAna: I like tea."
    assert packed.tokens == count_tokens(packed.text) <= 30
    assert [m.text for m in packed.memories] == ["Ana: I like tea.", "Ana: I have a cat."]


def test_what_a_named_person_said_is_preferred() -> None:
    from maas.memory.search import prefer_speakers

    when = datetime(2023, 5, 8, tzinfo=UTC)
    said_by_ana = Candidate(1, "Ana: I paint.", 0.5, when, when, [1], score=1.0, speaker="Ana")
    said_by_bo = Candidate(2, "Bo: I paint too.", 0.5, when, when, [2], score=1.1, speaker="Bo")
    prefer_speakers([said_by_ana, said_by_bo], ["Ana's"], 0.3)
    assert said_by_ana.score == 1.3 and said_by_bo.score == 1.1
    prefer_speakers([said_by_ana, said_by_bo], [], 0.3)
    assert said_by_ana.score == 1.3


async def test_an_archive_job_with_no_lines_extracts_nothing() -> None:
    """A job whose messages were all archived already (or none is left) must not fail: it used
    to raise on the empty transcript and be retried until FAILED."""
    from maas.llm.offline import OfflineModel

    calls = []

    async def record(call: object) -> None:
        calls.append(call)

    model = OfflineModel()
    assert await model.extract_facts([], defaults(), record) == []
    line = TranscriptLine(1, "user", None, "I adopted a greyhound named Pixel last spring.", AT)
    assert [f.text for f in await model.extract_facts([line], defaults(), record)]
    assert len(calls) == 2


async def _loop_turns_during(work: Any) -> tuple[Any, int]:
    """Run `work` while a ticker counts its turns on the same event loop."""
    ticks, done = 0, asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.002)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # the ticker has started
    before = ticks
    try:
        result = await work
    finally:
        done.set()
        await task
    return result, ticks - before


async def test_a_big_import_is_archived_off_the_event_loop() -> None:
    """~1 MB of imported turns: the offline archivist's regexes and token counts take seconds;
    they run in a thread, so the loop keeps taking turns (on the loop: none until it is done)."""
    from maas.llm.offline import OfflineModel

    async def record(call: object) -> None:
        pass

    turn = "My sister Maria moved to Berlin last week and teaches piano at 3 schools. " * 400
    lines = [TranscriptLine(i, "user", None, turn, AT) for i in range(1, 34)]
    facts, turns = await _loop_turns_during(OfflineModel().extract_facts(lines, defaults(), record))
    assert len(facts) > 1000 and turns >= 3


async def test_many_names_and_dates_in_one_message_do_not_fail_the_analyzer() -> None:
    """More than 64 distinct names or dates used to fail the analyzer's own output model on every
    attempt, so such a chat ended FAILED; each list now keeps its first 64."""
    from maas.llm.offline import OfflineModel

    async def record(call: object) -> None:
        pass

    names = " ".join(f"Then Name{i:03d} came." for i in range(100))
    dates = " ".join(f"On {i % 28 + 1} May {1900 + i} it rained." for i in range(100))
    result = await OfflineModel().analyze(names + " " + dates, defaults(), record)
    assert result.entities[:3] == ["Name000", "Name001", "Name002"] and len(result.entities) == 64
    assert result.time_expressions[0] == "1 May 1900" and len(result.time_expressions) == 64
