"""What a cycle may try toward a goal, and which changes need a person.

Levers: every retrieval.* and context.* parameter of IMPACTS.md, each over its whole guard range
(maas.params.SPECS); archivist.* parameters only in cycles that re-import the histories (they
change what is stored). For each metric, hints say which levers plausibly move it and which way:
they order a macro cycle's one-step variants (the hinted ones first), nothing more. A goal's own
search space replaces the levers. Replay experiments ask at a fixed token budget through
/v1/context, so the levers that act only on chats are left out of their searches (`INERT`).

Critical changes (settings): any change of a listed parameter, or a new value outside a bound
(e.g. the context budget), waits for a person's approval however good the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maas.params import SPEC_BY_NAME, SPECS
from selflearn.manager.settings import ManagerSettings


@dataclass(frozen=True)
class Lever:
    param: str
    way: int  # +1: raising it should help the metric, -1: lowering it should, 0: either
    low: float
    high: float

    @property
    def boolean(self) -> bool:
        return isinstance(SPEC_BY_NAME[self.param].default, bool)


# Levers that do nothing in a replay (a /v1/context call at a fixed budget, no thread): why.
INERT = {
    "context.max_tokens": "a replay asks at a fixed token budget (the request's max_tokens)",
    "context.history_messages": "chat history reaches the responder only, not /v1/context",
}
# Archivist levers a re-importing cycle may move (idle_s decides when, not what, is stored).
ARCHIVIST = (
    "archivist.min_fact_words",
    "archivist.max_memory_words",
    "archivist.context_reply_words",
    "archivist.dedupe_similarity",
    "archivist.default_importance",
)


def _whole(name: str, way: int = 0) -> Lever:
    spec = SPEC_BY_NAME[name]
    return Lever(name, way, float(spec.low), float(spec.high))


def all_levers(reingest: bool = False, replay: bool = False) -> tuple[Lever, ...]:
    """Every retrieval.* and context.* parameter over its guard range (+ archivist.* when the
    cycle re-imports; − the inert ones in a replay)."""
    names = [s.name for s in SPECS if s.name.startswith(("retrieval.", "context."))]
    names += list(ARCHIVIST) if reingest else []
    return tuple(_whole(n) for n in names if not (replay and n in INERT))


_RECALL = {"retrieval.min_score": -1, "context.max_tokens": +1, "retrieval.w_vector": +1,
           "retrieval.sibling_decay": +1, "retrieval.neighbor_decay": +1,
           "retrieval.candidate_limit": +1, "retrieval.w_trgm": +1}  # fmt: skip
_PRECISION = {"retrieval.min_score": +1, "retrieval.candidate_limit": -1,
              "retrieval.sibling_decay": -1}  # fmt: skip
_COST = {"context.max_tokens": -1, "context.history_messages": -1}
_LATENCY = {"retrieval.candidate_limit": -1, "retrieval.w_trgm": -1}
HINTS: dict[str, dict[str, int]] = {
    "retrieval_precision": _PRECISION,
    "retrieval_recall": _RECALL,
    "budget_recall": _RECALL,
    "budget_recall_other": _RECALL,
    "recall_at_5": _RECALL,
    "recall_at_10": _RECALL,
    "recall_at_25": _RECALL,
    "answer_in_context": _RECALL,
    "found_anything_rate": _RECALL,
    "answer_accuracy": _RECALL,
    "abstention_correctness": _PRECISION,
    "context_utilisation": _COST,
    "hallucination_rate": _PRECISION,
    "latency_p50_ms": _LATENCY,
    "latency_p95_ms": _LATENCY,
    "tokens_per_dialog": _COST,
}


def levers(goal: dict[str, Any], reingest: bool = False, replay: bool = False) -> tuple[Lever, ...]:
    """The goal's search space if it has one (both ways), else every lever, the ones hinted for
    its metric first (with their direction)."""
    space = goal.get("search_space") or {}
    if space:
        return tuple(Lever(p, 0, float(lo), float(hi)) for p, (lo, hi) in sorted(space.items()))
    hints = HINTS.get(goal["metric"], {})
    every = all_levers(reingest, replay)
    hinted = [Lever(lv.param, hints[lv.param], lv.low, lv.high) for lv in every
              if lv.param in hints]  # fmt: skip
    hinted.sort(key=lambda lv: list(hints).index(lv.param))
    return (*hinted, *(lv for lv in every if lv.param not in hints))


def cast(param: str, value: float) -> float | int | bool:
    spec = SPEC_BY_NAME[param]
    if isinstance(spec.default, bool):
        return bool(value)
    if isinstance(spec.default, int):
        return int(round(value))
    return round(value, 4)


def steps(lever: Lever, current: float) -> list[float | int | bool]:
    """Candidate values of a lever from the current value: a fifth of the way to the end of its
    range it points at, half of it, then the end (both ends when no way is known); a boolean's
    other value."""
    if lever.boolean:
        return [not bool(current)]
    ends = {1: [lever.high], -1: [lever.low]}.get(lever.way, [lever.low, lever.high])
    current = min(max(current, lever.low), lever.high)  # from outside the range: its edge
    out: list[float | int | bool] = []
    for end in ends:
        for share in (0.2, 0.5, 1.0):
            value = cast(lever.param, current + (end - current) * share)
            if value != cast(lever.param, current) and value not in out:
                out.append(value)
    return out


def next_variant(
    goal: dict[str, Any], base: dict[str, Any], tried: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The first one-parameter change toward the goal not tested yet; None: all tried."""
    for lever in levers(goal):
        for value in steps(lever, float(base[lever.param])):
            variant = {lever.param: value}
            if variant not in tried:
                return variant
    return None


def critical_reasons(
    settings: ManagerSettings, before: dict[str, Any], after: dict[str, Any]
) -> list[str]:
    """Why a change from `before` to `after` needs a person (empty: it does not)."""
    reasons = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name in settings.critical_params:
            reasons.append(f"{name} is critical: {old} → {new} needs a person's approval")
        bound = settings.critical_bounds.get(name)
        if bound is not None and isinstance(new, int | float) and not bound[0] <= new <= bound[1]:
            reasons.append(
                f"{name} = {new} is outside the bound [{bound[0]:g}, {bound[1]:g}] "
                "a cycle may set on its own"
            )
    return reasons
