"""A question that names a time prefers the memories dated in it (issue 22, temporal questions)."""

from __future__ import annotations

from datetime import UTC, datetime

from maas.llm.when import period
from maas.memory.search import Candidate, prefer_period

NOW = datetime(2026, 12, 6, 15, 30, tzinfo=UTC)


def d(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def test_absolute_days_months_and_years() -> None:
    assert period("What did Gina find on 1 February, 2023?", NOW) == (d(2023, 2, 1), d(2023, 2, 2))
    assert period("What did she show on October 13, 2023?", NOW) == (
        d(2023, 10, 13),
        d(2023, 10, 14),
    )
    assert period("What setback did she face in October 2023?", NOW) == (
        d(2023, 10, 1),
        d(2023, 11, 1),
    )
    assert period("How many trips in 2022?", NOW) == (d(2022, 1, 1), d(2023, 1, 1))
    assert period("December 2026", NOW) == (d(2026, 12, 1), d(2027, 1, 1))  # the year turns


def test_relative_periods_count_back_from_now() -> None:
    assert period("what happened last May?", NOW) == (d(2026, 5, 1), d(2026, 6, 1))
    assert period("what did I buy last December?", NOW) == (d(2025, 12, 1), d(2026, 1, 1))
    assert period("what did I eat yesterday", NOW) == (d(2026, 12, 5), d(2026, 12, 6))
    assert period("who called last week", NOW) == (d(2026, 11, 23), d(2026, 11, 30))  # Mon-Sun
    assert period("last month", NOW) == (d(2026, 11, 1), d(2026, 12, 1))
    assert period("last year", NOW) == (d(2025, 1, 1), d(2026, 1, 1))


def test_no_period_without_a_date() -> None:
    assert period("When did Melanie go camping?", NOW) is None
    assert period("What is 2023 plus one?", NOW) is None  # a bare number is not a year asked
    assert period("May I ask what she painted?", NOW) is None


def cand(i: int, when: datetime, score: float) -> Candidate:
    return Candidate(i, f"memory {i}", 0.5, when, when, [i], score=score)


def test_memories_dated_in_the_asked_period_move_up() -> None:
    inside, outside = cand(1, d(2023, 10, 20), 1.0), cand(2, d(2023, 9, 30), 1.2)
    found = [outside, inside]
    prefer_period(found, "What setback did Melanie face in October 2023?", NOW, 0.3)
    assert inside.score == 1.3 and inside.components == {"period": 0.3}
    assert outside.score == 1.2 and outside.components == {}
    prefer_period(found, "What setback did Melanie face?", NOW, 0.3)  # no period: no change
    prefer_period(found, "in October 2023", NOW, 0.0)  # weight 0 = off
    assert (inside.score, outside.score) == (1.3, 1.2)
