"""Teacher metrics (METRICS.md section 10), from sensor tables and emulator expectations only.

The unit of analysis is the episode: one synthetic user, i.e. one scenario × persona of one
emulator run (its seed). A metric's unit value is the mean of its per-run values over the
episode's first-attempt probes (or, for latency and tokens, over all the episode's runs); an arm's
value is the mean of its unit values. Pure functions: the SQL that loads the rows is in
teacher.sql, the statistics in stats.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

Unit = tuple[str, str]  # (scenario, persona)


@dataclass(frozen=True)
class Metric:
    name: str
    direction: int  # +1: higher is better, -1: lower is better
    meaning: str
    # Power planning when a spec states no plan: the smallest change worth finding and the
    # assumed standard deviation of a scenario's mean paired difference (metric units).
    mde: float = 0.10
    sd: float = 0.25


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("retrieval_precision", 1, "share of retrieved memories made from a planted fact"),
        Metric("retrieval_recall", 1, "share of a probe's planted facts some retrieved memory has"),
        Metric("budget_recall", 1, "as retrieval_recall, counting packed (used) memories only"),
        Metric("found_anything_rate", 1, "share of probe runs that retrieved any memory"),
        Metric("answer_accuracy", 1, "share of probes whose reply holds the expected answer"),
        Metric("abstention_correctness", 1, "share of abstention probes whose reply declines"),
        Metric("context_utilisation", 1, "share of packed memories the answer draws on (judge)"),
        Metric("hallucination_rate", -1, "share of answers stating something unsupported (judge)"),
        Metric("latency_p50_ms", -1, "median run latency of an episode (ms)", 50.0, 100.0),
        Metric(
            "latency_p95_ms", -1, "95th percentile run latency of an episode (ms)", 100.0, 200.0
        ),  # fmt: skip
        Metric(
            "tokens_per_dialog", -1, "LLM tokens of the runs of one dialog (thread)", 50.0, 100.0
        ),  # fmt: skip
    )
}


@dataclass(frozen=True)
class Retrieved:
    used: bool
    sources: frozenset[int]


@dataclass(frozen=True)
class Probe:
    run_id: str
    user_id: str
    scenario: str
    persona: str
    ability: str
    fact_ids: tuple[str, ...]
    planted: dict[str, list[int]]
    answer_hit: bool
    retrieved: tuple[Retrieved, ...] = ()

    @property
    def unit(self) -> Unit:
        return (self.scenario, self.persona)


@dataclass(frozen=True)
class RunCost:
    user_id: str
    thread_id: str | None
    latency_ms: float
    tokens: int
    found: bool | None = None  # found_anything (split experiments' unit values)


@dataclass(frozen=True)
class Judged:
    hallucination: float  # mean of the judge's scores (0 = supported … 1 = unsupported)
    utilisation: float | None  # share of used memories the answer uses; None: none used


# Metrics the judge scores: their coverage per arm is checked before they may decide.
JUDGE_METRICS = ("context_utilisation", "hallucination_rate")

# What a split experiment (live traffic, no planted facts) can measure: sensor tables only.
SENSOR_METRICS = ("found_anything_rate", "latency_p50_ms", "latency_p95_ms", "tokens_per_dialog")


@dataclass
class ArmData:
    probes: list[Probe] = field(default_factory=list)
    runs: list[RunCost] = field(default_factory=list)
    judged: dict[str, Judged] = field(default_factory=dict)
    by_thread: bool = False  # split experiments: the unit is the thread (dialog), not the episode

    @property
    def units(self) -> int:
        """Sample size for the SRM check: probes (paired) or threads (split)."""
        if self.by_thread:
            return len({r.thread_id for r in self.runs})
        return len(self.probes)


def _facts_hit(p: Probe, used_only: bool) -> float | None:
    if not p.fact_ids:
        return None
    seen: set[int] = set()
    for m in p.retrieved:
        if m.used or not used_only:
            seen |= m.sources
    hits = sum(bool(seen & set(p.planted.get(f, []))) for f in p.fact_ids)
    return hits / len(p.fact_ids)


def precision(p: Probe) -> float | None:
    """|{m ∈ RM(r) : prov(m) ∩ M_f ≠ ∅ for some planted f}| / |RM(r)|; None if undefined."""
    if not p.fact_ids or not p.retrieved:
        return None
    planted = set().union(*(set(p.planted.get(f, [])) for f in p.fact_ids))
    return sum(bool(m.sources & planted) for m in p.retrieved) / len(p.retrieved)


def _probe_values(p: Probe, judged: Judged | None) -> dict[str, float | None]:
    abstain = p.ability == "abstention"
    return {
        "retrieval_precision": precision(p),
        "retrieval_recall": _facts_hit(p, used_only=False),
        "budget_recall": _facts_hit(p, used_only=True),
        "found_anything_rate": float(bool(p.retrieved)),
        "answer_accuracy": float(p.answer_hit),
        "abstention_correctness": float(p.answer_hit) if abstain else None,
        "context_utilisation": judged.utilisation if judged else None,
        "hallucination_rate": judged.hallucination if judged else None,
    }


def _mean_by_unit(pairs: Iterable[tuple[Unit, float | None]]) -> dict[Unit, float]:
    acc: dict[Unit, list[float]] = defaultdict(list)
    for unit, value in pairs:
        if value is not None:
            acc[unit].append(value)
    return {u: sum(v) / len(v) for u, v in acc.items()}


def percentile(ordered: list[float], q: float) -> float:
    """numpy's default (linear) percentile of sorted values, without numpy's per-call cost
    (the simulation calls this thousands of times)."""
    at = q / 100 * (len(ordered) - 1)
    lo = int(at)
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (at - lo))


def _cost_values(data: ArmData, units: dict[str, Unit]) -> dict[str, dict[Unit, float]]:
    latency: dict[Unit, list[float]] = defaultdict(list)
    tokens: dict[Unit, dict[str | None, int]] = defaultdict(lambda: defaultdict(int))
    for run in data.runs:
        unit = units.get(run.user_id)
        if unit is not None:
            latency[unit].append(run.latency_ms)
            tokens[unit][run.thread_id] += run.tokens
    ordered = {u: sorted(v) for u, v in latency.items()}
    return {
        "latency_p50_ms": {u: percentile(v, 50) for u, v in ordered.items()},
        "latency_p95_ms": {u: percentile(v, 95) for u, v in ordered.items()},
        "tokens_per_dialog": {u: sum(t.values()) / len(t) for u, t in tokens.items()},
    }


def thread_values(data: ArmData) -> dict[str, dict[Unit, float]]:
    """Split experiments: the sensor metrics per thread (unit = (thread, thread))."""
    by: dict[Unit, list[RunCost]] = defaultdict(list)
    for run in data.runs:
        by[(str(run.thread_id), str(run.thread_id))].append(run)
    return {
        "found_anything_rate": {
            u: float(np.mean([bool(r.found) for r in rs])) for u, rs in by.items()
        },
        "latency_p50_ms": {
            u: float(np.percentile([r.latency_ms for r in rs], 50)) for u, rs in by.items()
        },
        "latency_p95_ms": {
            u: float(np.percentile([r.latency_ms for r in rs], 95)) for u, rs in by.items()
        },
        "tokens_per_dialog": {u: float(sum(r.tokens for r in rs)) for u, rs in by.items()},
    }


def unit_values(data: ArmData) -> dict[str, dict[Unit, float]]:
    """{metric: {unit: value}} over the arm's units; a unit without a defined value is absent."""
    if data.by_thread:
        return thread_values(data)
    rows = [(p.unit, _probe_values(p, data.judged.get(p.run_id))) for p in data.probes]
    out = {
        name: _mean_by_unit((unit, values[name]) for unit, values in rows)
        for name in METRICS
        if name in rows[0][1]
    } if rows else {}  # fmt: skip
    units = {p.user_id: p.unit for p in data.probes}
    out.update(_cost_values(data, units))
    return out
