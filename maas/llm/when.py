"""Relative time expressions resolved against the moment a message was written.

"I went there yesterday" said on 8 May 2023 becomes "I went there yesterday (7 May 2023)", so a
later question "when did…" finds the date in the memory itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_UNITS = {"day": 1, "days": 1, "week": 7, "weeks": 7}
_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "few": 3,
    "couple of": 2,
}


# strftime('%B') in the C locale, without its cost: the packer dates ~200 candidates per run.
MONTHS = tuple(datetime(2000, m, 1).strftime("%B") for m in range(1, 13))


def day(d: datetime) -> str:
    """'8 May 2023': the form people (and LoCoMo answers) write dates in."""
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def month(d: datetime) -> str:
    return f"{MONTHS[d.month - 1]} {d.year}"


def _shift_month(d: datetime, months: int) -> datetime:
    index = d.year * 12 + d.month - 1 + months
    return d.replace(year=index // 12, month=index % 12 + 1, day=1)


def _last_weekday(at: datetime, name: str) -> datetime:
    back = (at.weekday() - _WEEKDAYS.index(name)) % 7 or 7
    return at - timedelta(days=back)


def _ago(at: datetime, amount: str, unit: str) -> str:
    n = int(amount) if amount.isdigit() else _NUMBERS.get(amount, 1)
    if unit.startswith(("day", "week")):
        return day(at - timedelta(days=n * _UNITS[unit]))
    if unit.startswith("month"):
        return month(_shift_month(at, -n))
    return str(at.year - n)


_RULES: list[tuple[re.Pattern[str], Callable[[datetime, re.Match[str]], str]]] = [
    (re.compile(r"\b(yesterday)\b", re.I), lambda at, m: day(at - timedelta(days=1))),
    (
        re.compile(r"\b(today|tonight|this morning|this afternoon|this evening)\b", re.I),
        lambda at, m: day(at),
    ),
    (re.compile(r"\b(tomorrow)\b", re.I), lambda at, m: day(at + timedelta(days=1))),
    (
        re.compile(r"\b(last|this past) (week|weekend)\b", re.I),
        lambda at, m: f"the {m[2].lower()} before {day(at)}",
    ),
    (
        re.compile(r"\b(next) (week|weekend)\b", re.I),
        lambda at, m: f"the {m[2].lower()} after {day(at)}",
    ),
    (
        re.compile(r"\bthis (week|weekend)\b", re.I),
        lambda at, m: f"the {m[1].lower()} of {day(at)}",
    ),
    (re.compile(r"\b(last|this past) month\b", re.I), lambda at, m: month(_shift_month(at, -1))),
    (re.compile(r"\bnext month\b", re.I), lambda at, m: month(_shift_month(at, 1))),
    (re.compile(r"\bthis month\b", re.I), lambda at, m: month(at)),
    (re.compile(r"\blast year\b", re.I), lambda at, m: str(at.year - 1)),
    (re.compile(r"\bnext year\b", re.I), lambda at, m: str(at.year + 1)),
    (re.compile(r"\bthis year\b", re.I), lambda at, m: str(at.year)),
    (
        re.compile(rf"\blast ({'|'.join(_WEEKDAYS)})\b", re.I),
        lambda at, m: day(_last_weekday(at, m[1].lower())),
    ),
    (
        re.compile(
            r"\b(\d+|a|an|one|two|three|four|five|six|few|couple of) "
            r"(days?|weeks?|months?|years?) ago\b",
            re.I,
        ),
        lambda at, m: _ago(at, m[1].lower(), m[2].lower()),
    ),
]


def resolve(text: str, at: datetime | None) -> str:
    """Append the absolute date after each relative expression; text without one is unchanged."""
    if at is None:
        return text
    spans: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for pattern, render in _RULES:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < e and s < end for s, e in taken):
                continue
            taken.append((start, end))
            spans.append((end, f" ({render(at, match)})"))
    for end, note in sorted(spans, reverse=True):
        text = text[:end] + note + text[end:]
    return text


# --------------------------------------------------------------------------- periods in questions

_MONTH_NAMES = "|".join(m.lower() for m in MONTHS)
_MONTH_INDEX = {m.lower(): i + 1 for i, m in enumerate(MONTHS)}
_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}}) ({_MONTH_NAMES}),? (\d{{4}})\b", re.I)
_MONTH_DAY_YEAR = re.compile(rf"\b({_MONTH_NAMES}) (\d{{1,2}}),? (\d{{4}})\b", re.I)
_MONTH_YEAR = re.compile(rf"\b({_MONTH_NAMES}),? (\d{{4}})\b", re.I)
_LAST_MONTH_NAME = re.compile(rf"\b(?:last|this past) ({_MONTH_NAMES})\b", re.I)
_YEAR = re.compile(r"\b(?:in|during|of) ((?:19|20)\d\d)\b", re.I)

Period = tuple[datetime, datetime]  # [start, end)


def _days(start: datetime, n: int) -> Period:
    return start, start + timedelta(days=n)


def _month_period(year: int, month_number: int, tz: Any) -> Period:
    start = datetime(year, month_number, 1, tzinfo=tz)
    return start, _shift_month(start, 1)


def period(text: str, now: datetime) -> Period | None:
    """The time a question is about, when it names one: a day ("13 October 2023", "October 13,
    2023"), a month ("October 2023", "last May": the latest May before `now`), a year ("in
    2022"), or "yesterday", "last week/month/year" counted back from `now`. None otherwise."""
    tz = now.tzinfo
    if m := _DAY_MONTH_YEAR.search(text):
        return _days(datetime(int(m[3]), _MONTH_INDEX[m[2].lower()], int(m[1]), tzinfo=tz), 1)
    if m := _MONTH_DAY_YEAR.search(text):
        return _days(datetime(int(m[3]), _MONTH_INDEX[m[1].lower()], int(m[2]), tzinfo=tz), 1)
    if m := _MONTH_YEAR.search(text):
        return _month_period(int(m[2]), _MONTH_INDEX[m[1].lower()], tz)
    if m := _LAST_MONTH_NAME.search(text):
        number = _MONTH_INDEX[m[1].lower()]
        year = now.year if number < now.month else now.year - 1
        return _month_period(year, number, tz)
    if m := _YEAR.search(text):
        return datetime(int(m[1]), 1, 1, tzinfo=tz), datetime(int(m[1]) + 1, 1, 1, tzinfo=tz)
    return _relative_period(text.lower(), now)


def _relative_period(text: str, now: datetime) -> Period | None:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if "yesterday" in text:
        return _days(today - timedelta(days=1), 1)
    if re.search(r"\blast week\b", text):
        return _days(today - timedelta(days=today.weekday() + 7), 7)
    if re.search(r"\blast month\b", text):
        first = _shift_month(today, -1)
        return first, _shift_month(first, 1)
    if re.search(r"\blast year\b", text):
        return datetime(now.year - 1, 1, 1, tzinfo=now.tzinfo), today.replace(month=1, day=1)
    return None
