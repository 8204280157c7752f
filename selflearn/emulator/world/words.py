"""Content words, dates and small phrase helpers shared by the world's fact kinds."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from functools import cache

from maas.llm.offline import STOPWORDS

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WORD = re.compile(r"[a-z]+")
_AGO = {"two days ago": 2, "three days ago": 3, "four days ago": 4, "a week ago": 7}


@cache
def _stemmer() -> object:
    from nltk.stem import PorterStemmer

    return PorterStemmer()


@cache
def stem(word: str) -> str:
    return str(_stemmer().stem(word))  # type: ignore[attr-defined]


def content_stems(text: str, ignore: frozenset[str] = frozenset()) -> set[str]:
    """Stems of the words that carry meaning (not stopwords, not the ignored names)."""
    words = _WORD.findall(text.lower())
    return {stem(w) for w in words if w not in STOPWORDS and w not in ignore and len(w) > 2}


def shares_content(question: str, statements: list[str], names: frozenset[str]) -> bool:
    """Does the question use a content word of any statement (names aside)?"""
    asked = content_stems(question, names)
    return any(asked & content_stems(s, names) for s in statements)


def day(d: datetime) -> str:
    """'8 May 2023', the form LoCoMo's answers (and MaaS's dated memories) use."""
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def when(rng: random.Random, at: datetime) -> tuple[str, datetime]:
    """A relative date said at `at` ("last Tuesday", "yesterday", "three days ago") and the day
    it means."""
    choice = rng.randrange(3)
    if choice == 0:
        return "yesterday", at - timedelta(days=1)
    if choice == 1:
        name = rng.choice(WEEKDAYS)
        back = (at.weekday() - WEEKDAYS.index(name)) % 7 or 7
        return f"last {name}", at - timedelta(days=back)
    phrase = rng.choice(sorted(_AGO))
    return phrase, at - timedelta(days=_AGO[phrase])


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def article(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"
