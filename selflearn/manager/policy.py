"""What a cycle may try toward a goal, and which changes need a person.

Levers: for each metric, parameters that plausibly move it and which way (IMPACTS.md), with the
range a search may use. A goal's own search space overrides them. A macro cycle without an
explicit variant tries the first lever step its goal has not tested yet.

Critical changes (settings): any change of a listed parameter, or a new value outside a bound
(e.g. the context budget), waits for a person's approval however good the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maas.params import SPEC_BY_NAME
from selflearn.manager.settings import ManagerSettings


@dataclass(frozen=True)
class Lever:
    param: str
    way: int  # +1: raising it should help the metric, -1: lowering it should
    low: float
    high: float


_RECALL = (
    Lever("retrieval.min_score", -1, 0.0, 0.5),
    Lever("context.max_tokens", +1, 200, 3000),
    Lever("retrieval.w_trgm", +1, 0.0, 2.0),
)
_PRECISION = (
    Lever("retrieval.min_score", +1, 0.0, 1.0),
    Lever("retrieval.candidate_limit", -1, 10, 400),
    Lever("retrieval.sibling_decay", -1, 0.0, 1.0),
)
_COST = (
    Lever("context.max_tokens", -1, 200, 3000),
    Lever("context.history_messages", -1, 0, 12),
)
_LATENCY = (
    Lever("retrieval.candidate_limit", -1, 10, 400),
    Lever("retrieval.w_trgm", -1, 0.0, 2.0),
)
LEVERS: dict[str, tuple[Lever, ...]] = {
    "retrieval_precision": _PRECISION,
    "retrieval_recall": _RECALL,
    "budget_recall": _RECALL,
    "found_anything_rate": _RECALL,
    "answer_accuracy": _RECALL,
    "abstention_correctness": _PRECISION,
    "context_utilisation": _COST,
    "hallucination_rate": _PRECISION,
    "latency_p50_ms": _LATENCY,
    "latency_p95_ms": _LATENCY,
    "tokens_per_dialog": _COST,
}


def levers(goal: dict[str, Any]) -> tuple[Lever, ...]:
    """The goal's search space if it has one (no direction known: both ways), else defaults."""
    space = goal.get("search_space") or {}
    if space:
        return tuple(Lever(p, 0, float(lo), float(hi)) for p, (lo, hi) in sorted(space.items()))
    return LEVERS.get(goal["metric"], ())


def _cast(param: str, value: float) -> float | int:
    spec = SPEC_BY_NAME[param]
    if isinstance(spec.default, int) and not isinstance(spec.default, bool):
        return int(round(value))
    return round(value, 4)


def steps(lever: Lever, current: float) -> list[float | int]:
    """Candidate values of a lever from the current value: halfway to the end it points at
    (both ends for a goal's own space), nearest first."""
    ends = {1: [lever.high], -1: [lever.low]}.get(lever.way, [lever.low, lever.high])
    current = min(max(current, lever.low), lever.high)  # from outside the range: its edge
    out = []
    for end in ends:
        for share in (0.5, 1.0):
            value = _cast(lever.param, current + (end - current) * share)
            if value != _cast(lever.param, current) and value not in out:
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
