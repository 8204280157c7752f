"""The packer's token total is computed from cached line counts; it must equal tiktoken's count
of the packed text, whatever the memories' text looks like."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from maas.llm.tokens import count_tokens
from maas.memory.budget import STORED_ENCODING, pack, stored_line_tokens
from maas.memory.search import Candidate

AWKWARD = [
    "Ana: I like tea.",
    "ends with spaces   ",
    "ends with a newline\n",
    "two\n\nparagraphs\n  indented",
    "  starts with spaces",
    "\nstarts with a newline",
    "tabs\there\t",
    "punctuation!!!\n",
    "numbers 12345 and 3.14159",
    "émoji 🙂 and ünïcödé — dashes",
    "CRLF line\r\n",
    "trailing colon:",
    "'quoted' \"words\" it's we're",
    "",
    "   ",
    "<|endoftext|> is just text here",
    "/starts with a slash",
    "\u00a0no-break space\u2028line separator\u3000",
    "'s a contraction first",
]


def _cands(rng: random.Random, n: int, dated: bool) -> list[Candidate]:
    base = datetime(2023, 5, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        text = "".join(rng.choice(AWKWARD) for _ in range(rng.randint(1, 3)))
        when = base + timedelta(days=rng.randint(0, 5)) if dated else None
        out.append(Candidate(i + 1, text, 0.5, when, base, [i], score=rng.random()))
    return out


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
@pytest.mark.parametrize("include_dates", [True, False])
def test_the_token_total_is_what_tiktoken_counts(encoding: str, include_dates: bool) -> None:
    rng = random.Random(7)
    for trial in range(150):
        cands = _cands(rng, rng.randint(1, 40), dated=trial % 3 != 0)
        packed = pack(cands, rng.choice([30, 120, 400, 5000]), include_dates, encoding)
        assert packed.tokens == count_tokens(packed.text, encoding), packed.text


def test_nothing_fits_is_zero_tokens() -> None:
    cands = _cands(random.Random(1), 3, dated=True)
    packed = pack(cands, 1, True, "cl100k_base")
    assert packed.used_ids == set() and packed.text == "" and packed.tokens == 0


def _stored(cands: list[Candidate]) -> list[Candidate]:
    return [replace(c, line_tokens=stored_line_tokens(c.text)) for c in cands]


@pytest.mark.parametrize("include_dates", [True, False])
def test_stored_line_counts_pack_exactly_what_counting_packs(include_dates: bool) -> None:
    rng = random.Random(11)
    for trial in range(100):
        cands = _cands(rng, rng.randint(1, 40), dated=trial % 3 != 0)
        budget = rng.choice([30, 120, 400, 5000])
        counted = pack(cands, budget, include_dates, STORED_ENCODING)
        stored = pack(_stored(cands), budget, include_dates, STORED_ENCODING)
        assert (stored.text, stored.tokens, stored.line_tokens, stored.used_ids) == (
            counted.text,
            counted.tokens,
            counted.line_tokens,
            counted.used_ids,
        )
        assert stored.tokens == count_tokens(stored.text, STORED_ENCODING)


def test_the_packer_takes_a_stored_count_in_its_encoding_only() -> None:
    base = datetime(2023, 5, 1, tzinfo=UTC)
    cands = [
        Candidate(1, "short memory", 0.5, base, base, [1], score=2.0, line_tokens=500),
        Candidate(2, "another one", 0.5, base, base, [2], score=1.0, line_tokens=3),
    ]
    stored = pack(cands, 100, False, STORED_ENCODING)
    assert stored.line_tokens == {1: 500, 2: 3} and stored.used_ids == {2}
    other = pack(cands, 100, False, "o200k_base")  # stored counts are cl100k_base's: ignored
    assert other.used_ids == {1, 2}
    assert other.line_tokens[1] == count_tokens("short memory\n", "o200k_base")


SPEAKERS = ["Ana", "Bo Li", "J.R.", "Émile", "O'Neil", " Bob", "x:y", "7even", "", None, "Ann\nB"]


def _spoken(rng: random.Random, n: int) -> list[Candidate]:
    """Memories whose text mostly begins with their speaker's name, awkward names and texts."""
    base = datetime(2023, 5, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        who = rng.choice(SPEAKERS)
        body = "".join(rng.choice(AWKWARD) for _ in range(rng.randint(1, 2)))
        text = f"{who}: {body}" if who is not None and rng.random() < 0.8 else body
        when = base + timedelta(days=rng.randint(0, 3), minutes=i)
        out.append(Candidate(i + 1, text, 0.5, when, base, [i], speaker=who, score=rng.random()))
    return out


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_grouped_by_speaker_the_total_is_still_what_tiktoken_counts(encoding: str) -> None:
    rng = random.Random(11)
    for _ in range(200):
        cands = _spoken(rng, rng.randint(1, 40))
        packed = pack(cands, rng.choice([30, 120, 400, 5000]), True, encoding, True)
        assert packed.tokens == count_tokens(packed.text, encoding), packed.text


def test_a_chat_users_memories_are_grouped_under_user() -> None:
    """A chat message has no speaker: the archivist names its memories "User: ..." (UNNAMED), and
    they share one "User:" header a day; a speakerless memory in another form stays whole."""
    at = datetime(2024, 3, 1, 9, tzinfo=UTC)
    said = ["User: I moved to Lyon.", "User prefers tea.", "User: My cat is Miso."]
    cands = [Candidate(i, t, 0.5, at, at, [i], score=1 - i / 10) for i, t in enumerate(said)]
    packed = pack(cands, 500, True, "cl100k_base", True)
    assert packed.text == (
        "1 March 2024:\nUser prefers tea.\nUser:\nI moved to Lyon.\nMy cat is Miso."
    )
    assert packed.tokens == count_tokens(packed.text, "cl100k_base")


def test_a_speaker_heads_their_lines_once_a_day_and_the_budget_buys_more() -> None:
    day1, day2 = datetime(2023, 5, 8, 9, tzinfo=UTC), datetime(2023, 5, 9, 9, tzinfo=UTC)
    said = [
        ("Melanie: I love camping with the kids.", "Melanie", day1),
        ("Caroline: I went to a support group.", "Caroline", day1),
        ('Melanie (to Caroline\'s "How was it?"): It was great.', "Melanie", day1),
        ("Melanie: We went to the beach.", "Melanie", day1),
        ("Melanie: Pottery is my new thing.", "Melanie", day2),
    ]
    cands = [
        Candidate(i, text, 0.5, when, when, [i], speaker=who, score=1 - i / 10)
        for i, (text, who, when) in enumerate(said)
    ]
    packed = pack(cands, 500, True, "cl100k_base", True)
    assert packed.text == (
        "8 May 2023:\n"
        'Melanie (to Caroline\'s "How was it?"): It was great.\n'  # not "Melanie: ...": whole
        "Melanie:\n"
        "I love camping with the kids.\n"
        "We went to the beach.\n"
        "Caroline:\n"
        "I went to a support group.\n"
        "9 May 2023:\n"
        "Melanie:\n"
        "Pottery is my new thing."
    )
    assert [m.text for m in packed.memories] == [text for text, _, _ in said]  # whole, by score
    one_speaker = [replace(c, text=f"Melanie: fact number {c.id}", speaker="Melanie") for c in
                   _cands(random.Random(3), 60, dated=True)]  # fmt: skip
    whole = pack(one_speaker, 150, True, "cl100k_base")
    heads = pack(one_speaker, 150, True, "cl100k_base", True)
    assert len(heads.used_ids) > len(whole.used_ids) and heads.tokens <= 150


def test_one_memory_one_line_and_a_memory_of_no_words_is_not_packed() -> None:
    """No numbers: a line is its memory's words (its own line breaks are spaces), so a reader
    tells memories apart by lines; a memory with no words would be an empty line."""
    at = datetime(2024, 3, 1, 9, tzinfo=UTC)
    said = ["Ana: two\nlines  here", " \n ", "Ana: 3 cats"]
    cands = [Candidate(i, t, 0.5, at, at, [i], score=1 - i / 10) for i, t in enumerate(said)]
    packed = pack(cands, 500, True, "cl100k_base")
    assert packed.text == "1 March 2024:\nAna: two lines here\nAna: 3 cats"
    assert packed.used_ids == {0, 2} and packed.tokens == count_tokens(packed.text)
