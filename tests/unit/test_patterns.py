"""Test-suite patterns on RE2: refused when RE2 cannot run them fast, bounded when it can."""

from __future__ import annotations

import pytest

from maas.testsuite.checks import absent, present
from maas.testsuite.patterns import Budget, PatternError, compiled
from maas.testsuite.suite import Regex


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"(\w+)\s\1", "invalid escape sequence"),  # a backreference
        (r"(?=secret)", "invalid perl operator"),  # lookahead
        (r"\w{1000}", "too complex"),  # 8004 instructions
    ],
)
def test_patterns_re2_cannot_run_fast_are_refused(pattern: str, why: str) -> None:
    with pytest.raises(PatternError, match=why):
        compiled(pattern)


def test_catastrophic_for_backtracking_is_linear_here() -> None:
    """(a+)+$ against a's ending in '!': Python's re takes ~2^n steps (a day at n = 40)."""
    texts = ["a" * 100_000 + "!", "User: " + "a" * 40]
    budget = Budget()
    assert absent("memory_not_stored", Regex(regex="(a+)+!$"), texts, budget).passed is False
    assert absent("memory_not_stored", Regex(regex="(a+)+$"), texts, budget).passed is False
    assert present("memory_stored", Regex(regex="(a+)+#"), texts, budget).passed is False


def test_a_spent_budget_fails_the_check_and_says_so() -> None:
    """A costly (but linear) program over many texts stops when the test run's time is spent."""
    costly = Regex(regex="((a|b){1,20}){1,20}c")  # ~1600 instructions, tens of µs per character
    texts = ["ab" * 10_000] * 50
    budget = Budget(seconds=0.05)
    check = present("memory_retrieved", costly, texts, budget)
    assert not check.passed and check.actual.startswith("not evaluated: this test run's 0.05 s")
    again = absent("memory_not_retrieved", Regex(regex="x"), ["x"], budget)
    assert not again.passed and again.actual.startswith("not evaluated")
    assert present("memory_retrieved", Regex(regex="b{2}|ab"), ["xab"], Budget()).passed
