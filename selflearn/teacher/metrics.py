"""Teacher metrics (METRICS.md section 10), from sensor tables and emulator records only.

Dialog experiments (the scripted episodes): the unit of analysis is the episode, one synthetic
user, i.e. one scenario × persona of one emulator run (its seed); a metric's unit value is the
mean of its per-run values over the episode's first-attempt probes (or, for latency and tokens,
over all the episode's runs).

Replay experiments (a world's or a corpus's questions over stored histories): the unit is the
question, labelled with its cluster (the synthetic user or conversation it belongs to), so the
bootstrap resamples users and questions of one user are never treated as independent; latency is
a per-user figure. An arm's value is the mean of its unit values. Pure functions: the SQL that
loads the rows is in teacher.sql, the statistics in stats.py.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np

Unit = tuple[str, str]  # (scenario, persona); replay: (conversation, question id)
KS = (5, 10, 25)  # evidence recall@k: memories in rank order, packed or not


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
        Metric(
            "budget_recall_other",
            1,
            "budget_recall at a replay's other token budget (e.g. 500 beside 2000)",
        ),
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
        *(
            Metric(f"recall_at_{k}", 1, f"share of a question's evidence in its top {k} memories")
            for k in KS
        ),
        Metric(
            "answer_in_context",
            1,
            "share of questions whose packed context holds the "
            "expected answer (every LoCoMo-normalised token)",
        ),
    )
}
# What only replayed questions (evidence ids, a packed context) define.
REPLAY_METRICS = ("answer_in_context", "budget_recall_other", *(f"recall_at_{k}" for k in KS))


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
class Asked:
    """One replayed question on one arm: its ground truth (evidence message ids, the expected
    answer), what the run retrieved (rank order, from the sensor) and what the emulator saw of
    its reply (does the packed context hold the answer; the best score, for abstention)."""

    run_id: str
    user_id: str
    cluster: str  # the conversation (synthetic user) it belongs to
    question_id: str
    qtype: str
    evidence: frozenset[int]  # empty: unanswerable
    context_hit: bool | None  # None: no expected answer
    top_score: float | None  # best fused score retrieved (None: nothing retrieved)
    retrieved: tuple[Retrieved, ...] = ()

    @property
    def unit(self) -> Unit:
        return (self.cluster, self.question_id)


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
    asked: list[Asked] = field(default_factory=list)  # replay experiments: the questions
    # … asked again at the replay's other budget (budget_recall_other), when it has one
    asked_other: list[Asked] = field(default_factory=list)
    abstain_floor: float = 1.0  # replay: a best score below it counts as declining to answer

    @property
    def units(self) -> int:
        """Sample size for the SRM check: probes (paired), questions (replay) or threads."""
        if self.by_thread:
            return len({r.thread_id for r in self.runs})
        return len(self.asked) if self.asked else len(self.probes)


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


# ---- replayed questions ------------------------------------------------------------------------

_PUNCTUATION = frozenset(string.punctuation)
_LOCOMO_DROPPED = re.compile(r"\b(a|an|the|and)\b")


@cache
def _stemmer() -> object:
    from nltk.stem.porter import PorterStemmer  # the stemmer LoCoMo's own scorer uses

    return PorterStemmer()


@cache
def _stem(token: str) -> str:
    return str(_stemmer().stem(token))  # type: ignore[attr-defined]


def normalize_locomo(text: str) -> list[str]:
    """LoCoMo's answer normalisation (task_eval/evaluation.py, as `maas bench locomo` applies
    it): drop commas, lower-case, drop a/an/the/and and punctuation, split, Porter-stem."""
    text = _LOCOMO_DROPPED.sub(" ", text.replace(",", "").lower())
    no_punct = "".join(ch for ch in text if ch not in _PUNCTUATION)
    return [_stem(token) for token in no_punct.split()]


def answer_in_context(answer: str, context: str) -> bool:
    """Every normalised token of the answer is among the context's tokens (token level, not a
    substring: "May" is not in "maybe"); an answer with no tokens is never in context."""
    wanted = normalize_locomo(answer)
    return bool(wanted) and set(wanted) <= set(normalize_locomo(context))


def evidence_recall(evidence: frozenset[int], memories: Sequence[Retrieved], used: bool) -> float:
    """Share of the evidence messages in the provenance of the memories (packed ones only when
    `used`)."""
    covered: set[int] = set()
    for m in memories:
        if m.used or not used:
            covered |= m.sources
    return len(evidence & covered) / len(evidence)


def asked_values(a: Asked, floor: float) -> dict[str, float | None]:
    """Per question. Answerable: recall of its evidence (retrieved, packed, top k) and whether
    the packed context holds the answer. Unanswerable: abstention, i.e. no memory scored at
    least the floor (an explicit score floor; fused scores, so it depends on the weights)."""
    found = float(bool(a.retrieved))
    if not a.evidence:
        declined = a.top_score is None or a.top_score < floor
        return {"found_anything_rate": found, "abstention_correctness": float(declined)}
    out: dict[str, float | None] = {
        "found_anything_rate": found,
        "retrieval_recall": evidence_recall(a.evidence, a.retrieved, used=False),
        "budget_recall": evidence_recall(a.evidence, a.retrieved, used=True),
        "answer_in_context": None if a.context_hit is None else float(a.context_hit),
    }
    for k in KS:
        out[f"recall_at_{k}"] = evidence_recall(a.evidence, a.retrieved[:k], used=False)
    return out


def _asked_values(data: ArmData) -> dict[str, dict[Unit, float]]:
    out: dict[str, dict[Unit, float]] = defaultdict(dict)
    for a in data.asked:
        for name, value in asked_values(a, data.abstain_floor).items():
            if value is not None:
                out[name][a.unit] = value
    for a in data.asked_other:
        if a.evidence:
            out["budget_recall_other"][a.unit] = evidence_recall(a.evidence, a.retrieved, True)
    by_user: dict[Unit, list[float]] = defaultdict(list)
    clusters = {a.user_id: a.cluster for a in data.asked}
    for run in data.runs:
        if run.user_id in clusters:
            by_user[(clusters[run.user_id], "runs")].append(run.latency_ms)
    out["latency_p50_ms"] = {u: float(np.percentile(v, 50)) for u, v in by_user.items()}
    out["latency_p95_ms"] = {u: float(np.percentile(v, 95)) for u, v in by_user.items()}
    return dict(out)


def by_type(data: ArmData) -> dict[str, dict[str, float]]:
    """{question type: {metric: mean over its questions, "questions": how many}} (reported beside
    the verdict)."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    counts: dict[str, int] = defaultdict(int)
    for a in data.asked:
        counts[a.qtype] += 1
        for name, value in asked_values(a, data.abstain_floor).items():
            if value is not None:
                values[a.qtype][name].append(value)
    return {
        t: {m: round(float(np.mean(v)), 6) for m, v in values[t].items()} | {"questions": n}
        for t, n in sorted(counts.items())
    }


def unit_values(data: ArmData) -> dict[str, dict[Unit, float]]:
    """{metric: {unit: value}} over the arm's units; a unit without a defined value is absent."""
    if data.by_thread:
        return thread_values(data)
    if data.asked:
        return _asked_values(data)
    rows = [(p.unit, _probe_values(p, data.judged.get(p.run_id))) for p in data.probes]
    out = {
        name: _mean_by_unit((unit, values[name]) for unit, values in rows)
        for name in METRICS
        if name in rows[0][1]
    } if rows else {}  # fmt: skip
    units = {p.user_id: p.unit for p in data.probes}
    out.update(_cost_values(data, units))
    return out
