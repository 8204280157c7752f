"""User-supplied regular expressions, run by RE2: matching takes time linear in the text, so a
pattern like `(a+)+$` cannot freeze the event loop (Python's `re` backtracks exponentially).

RE2 refuses what it cannot run in linear time (backreferences, lookaround) and patterns over its
memory budget; such a pattern is refused when the suite is validated, never at run time.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

MAX_PROGRAM_BYTES = 1 << 20  # RE2's compiled-program budget per pattern (its default is 8 MiB)


class PatternError(ValueError):
    """RE2 cannot compile the pattern; the message says why."""


def _options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # the refusal is reported to the caller, not to stderr
    options.max_mem = MAX_PROGRAM_BYTES
    return options


@lru_cache(maxsize=1024)
def compiled(pattern: str) -> Any:
    """The case-insensitive RE2 program of `pattern` (PatternError when RE2 refuses it)."""
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        text = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise PatternError(f"{text} (RE2 syntax: no backreferences, no lookaround)") from None


def search(pattern: str, text: str) -> bool:
    """Does `pattern` occur in `text` (case-insensitive), in time linear in the text."""
    return compiled(pattern).search(text) is not None
