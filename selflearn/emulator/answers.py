"""Does a reply hold the expected answer? Matched on whole words, so "May" is not found in
"maybe" nor "14" in "140"; for a knowledge-update question the current value must come before
any value it replaced ("the plot was 14, now 22" states the stale value first and does not
count; "it is 22 (it used to be 14)" does)."""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # letters and digits; punctuation separates


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def position(reply: list[str], phrase: str) -> int | None:
    """Index of the first whole-word occurrence of `phrase` in the reply's words, or None."""
    wanted = words(phrase)
    if not wanted:
        return None
    n = len(wanted)
    for i in range(len(reply) - n + 1):
        if reply[i : i + n] == wanted:
            return i
    return None


def holds(expected: str, reply: str, stale: Iterable[str] = ()) -> bool:
    """The reply states `expected`, and no `stale` value comes first."""
    said = words(reply)
    at = position(said, expected)
    if at is None:
        return False
    earlier = (position(said, s) for s in stale if words(s) != words(expected))
    return all(p is None or p > at for p in earlier)
