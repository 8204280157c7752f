"""User-supplied regular expressions, run by RE2 in a worker thread under a time budget.

RE2 takes time linear in the text, so a pattern like `(a+)+$` cannot backtrack for a day as it
does with Python's `re`. Linear is not cheap: a large program over many memories still costs
seconds, so searches run off the event loop (RE2 releases the GIL while it searches) and each test
run has a budget of search time; a check whose budget is spent fails and says so.

RE2 refuses what it cannot run in linear time (backreferences, lookaround) and programs over its
memory budget; such a pattern is refused when the suite is validated, never at run time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import re2

MAX_MEMORY = 1 << 20  # RE2's budget per compiled pattern (its default is 8 MiB)
MAX_PROGRAM = 2_000  # instructions: a search's cost per character grows with the program


class PatternError(ValueError):
    """RE2 cannot compile the pattern, or it is too large; the message says why."""


class BudgetSpent(Exception):
    """The test run's search time is used up: the check is not evaluated."""


def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # the refusal goes to the caller, not to stderr
    options.max_mem = MAX_MEMORY
    return options


def _reason(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)


@lru_cache(maxsize=1024)
def compiled(pattern: str) -> Any:
    """The case-insensitive RE2 program of `pattern` (PatternError when refused)."""
    try:
        program = re2.compile(pattern, _options())
    except re2.error as exc:
        raise PatternError(
            f"{_reason(exc)} (RE2 syntax: no backreferences, no lookaround)"
        ) from None
    if program.programsize > MAX_PROGRAM:
        size = program.programsize
        raise PatternError(f"too complex: {size} RE2 instructions, at most {MAX_PROGRAM}")
    return program


@dataclass
class Budget:
    """Search time a test run may spend in all (None: unbounded); spent between searches, so it
    is overrun by at most one search of one text."""

    seconds: float | None = None
    spent: float = 0.0

    def search(self, pattern: str, text: str) -> bool:
        """Does `pattern` occur in `text` (case-insensitive)? BudgetSpent when time is up."""
        if self.seconds is not None and self.spent >= self.seconds:
            raise BudgetSpent(
                f"not evaluated: this test run's {self.seconds:g} s of pattern search is spent"
            )
        started = time.perf_counter()
        try:
            return compiled(pattern).search(text) is not None
        finally:
            self.spent += time.perf_counter() - started
