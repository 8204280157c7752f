"""Expectations evaluated on what the API returned: pure functions, so each can be shown to fail.

Regex matchers search through a `Budget` (maas/testsuite/patterns.py): the engine runs a step's
checks in a worker thread with its test run's budget; called directly, the budget is unbounded.

A send step is checked on the run detail (GET /v1/runs/{id}: status, history, answer, retrieved
memories); a close step on the archive job and the user's memories (GET /v1/memories).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from maas.testsuite.patterns import Budget, BudgetSpent
from maas.testsuite.suite import CloseExpect, Matcher, Regex, SendExpect

WORKING = {"ANALYZING", "ASSEMBLING", "RESPONDING"}  # one per stage attempt in the history
SHOWN = 500  # characters of an actual value kept in a check


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    expected: str
    actual: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _short(text: str) -> str:
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def label(m: Matcher) -> str:
    return f"/{m.regex}/" if isinstance(m, Regex) else m


def matches(m: Matcher, text: str, budget: Budget) -> bool:
    if isinstance(m, Regex):
        return budget.search(m.regex, text)  # RE2: linear in the text, whatever the pattern
    return m.lower() in text.lower()


def _listing(texts: list[str]) -> str:
    return _short(" | ".join(texts)) if texts else "(none)"


def _hit(m: Matcher, texts: list[str], budget: Budget) -> str | None:
    return next((t for t in texts if matches(m, t, budget)), None)


def present(name: str, m: Matcher, texts: list[str], budget: Budget) -> Check:
    try:
        hit = _hit(m, texts, budget)
    except BudgetSpent as spent:
        return Check(name, False, label(m), str(spent))
    return Check(name, hit is not None, label(m), _short(hit) if hit else _listing(texts))


def absent(name: str, m: Matcher, texts: list[str], budget: Budget) -> Check:
    try:
        hit = _hit(m, texts, budget)
    except BudgetSpent as spent:
        return Check(name, False, f"no {label(m)}", str(spent))
    return Check(name, hit is None, f"no {label(m)}", _short(hit) if hit else _listing(texts))


def status_check(expect: SendExpect, run: dict[str, Any]) -> Check:
    actual = str(run.get("status"))
    if run.get("error"):
        actual += f" ({run['error']})"
    return Check("status", run.get("status") == expect.status, expect.status, _short(actual))


def stages_check(limit: int, run: dict[str, Any]) -> Check:
    attempts = sum(1 for e in run.get("history") or [] if e.get("status") in WORKING)
    done = run.get("status") == "COMPLETED"
    actual = f"{attempts} stage attempt(s), {run.get('status')}"
    return Check("within_stages", done and attempts <= limit, f"COMPLETED in <= {limit}", actual)


def answer_checks(expect: SendExpect, answer: str) -> list[Check]:
    low = answer.lower()
    shown = _short(answer) or "(no answer)"
    found = [Check("answer_contains", n.lower() in low, n, shown) for n in expect.answer_contains]
    return found + [
        Check("answer_not_contains", n.lower() not in low, f"no {n}", shown)
        for n in expect.answer_not_contains
    ]


def memory_checks(
    expect: SendExpect, memories: list[dict[str, Any]], budget: Budget
) -> list[Check]:
    retrieved = [str(m.get("text", "")) for m in memories]
    used = [str(m.get("text", "")) for m in memories if m.get("used")]
    return (
        [present("memory_retrieved", m, retrieved, budget) for m in expect.memory_retrieved]
        + [
            absent("memory_not_retrieved", m, retrieved, budget)
            for m in expect.memory_not_retrieved
        ]
        + [present("memory_used", m, used, budget) for m in expect.memory_used]
    )


def send_checks(
    expect: SendExpect, run: dict[str, Any], budget: Budget | None = None
) -> list[Check]:
    """Every expectation of a send step against the run detail."""
    checks = [status_check(expect, run)]
    if expect.within_stages is not None:
        checks.append(stages_check(expect.within_stages, run))
    checks += answer_checks(expect, str(run.get("answer") or ""))
    return checks + memory_checks(expect, list(run.get("memories") or []), budget or Budget())


def close_checks(
    expect: CloseExpect, job: dict[str, Any], stored: list[str], budget: Budget | None = None
) -> list[Check]:
    """The archivist finished the job; the user's (valid) memories hold what was expected."""
    state = str(job.get("status"))
    created = int(job.get("memories_created") or 0)
    actual = f"{state}, {created} memories created" + (
        f" ({job['error']})" if job.get("error") else ""
    )
    checks = [Check("archived", state == "done", "done", _short(actual))]
    if expect.memories_created_min is not None:
        minimum = expect.memories_created_min
        checks.append(
            Check("memories_created_min", created >= minimum, f">= {minimum}", str(created))
        )
    budget = budget or Budget()
    checks += [present("memory_stored", m, stored, budget) for m in expect.memory_stored]
    return checks + [
        absent("memory_not_stored", m, stored, budget) for m in expect.memory_not_stored
    ]


def request_failed(what: str, status: int, body: str) -> Check:
    return Check("request", False, f"{what}: 2xx", _short(f"{status}: {body}"))
