"""Offline mode's pure parts: keywords, relative dates, fact extraction, packing."""

from __future__ import annotations

from datetime import UTC, datetime

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
    assert all(len(f.text.split()) <= 20 + 1 for f in facts)
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
    assert packed.text == "7 May 2023:\n1. Ana: I have a cat.\n8 May 2023:\n2. Ana: I like tea."
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
