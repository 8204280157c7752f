"""From two arms' data to a verdict: per-metric deltas, intervals, p-values, checks, advice.

Paired when both arms ran the same units (scenario × persona of one seed): every planned unit
must be in both arms with all its probes, else the verdict is INVALID and names the units (a unit
that failed in one arm would otherwise vanish from both, and the arm that lost its hardest units
would look better). Tests, intervals and the decision rule: stats.py (one inference per metric).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from selflearn.teacher import stats
from selflearn.teacher.metrics import (
    JUDGE_METRICS,
    METRICS,
    SENSOR_METRICS,
    ArmData,
    Unit,
    unit_values,
)
from selflearn.teacher.spec import ExperimentSpec

NAN = float("nan")
JUDGE_COVERAGE_MIN = 0.9  # share of an arm's probes the judge must have scored …
JUDGE_COVERAGE_GAP = 0.05  # … and no more than this apart between the arms
LISTED = 8  # units named in a reason before "and N more"


@dataclass
class MetricResult:
    name: str
    role: str  # primary | guardrail | secondary
    baseline: float | None
    variant: float | None
    delta: float | None  # variant − baseline, in the metric's units
    ci: tuple[float, float] | None  # 1 − 2α interval of delta (±inf: unbounded at this n)
    p_value: float | None  # two-sided (2 × the smaller one-sided p), unadjusted: reported only
    p_holm: float | None  # primary: superiority; guardrail: harm (Holm, decision family)
    n_baseline: int
    n_variant: int
    test: str
    margin: float | None = None
    p_noninferior: float | None = None
    p_harm: float | None = None
    p_better: float | None = None  # one-sided, H1: the variant is better
    clusters: int | None = None  # scenarios (paired) or threads the test ran on
    ci_level: float | None = None


@dataclass
class Verdict:
    verdict: str
    reasons: list[str]
    recommendations: list[str]
    metrics: dict[str, MetricResult]
    checks: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reasons": self.reasons,
            "recommendations": self.recommendations,
            "metrics": {k: _clean(asdict(v)) for k, v in self.metrics.items()},
            "checks": self.checks,
        }


def _number(x: float) -> float | None:
    """NaN and ±inf are not JSON: None (an unbounded interval end is shown as such)."""
    return None if not math.isfinite(x) else float(f"{x:.6g}")


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, float):
            out[k] = _number(v)
        elif isinstance(v, tuple | list):
            out[k] = [_number(float(x)) for x in v]
        else:
            out[k] = v
    return out


@dataclass
class _Sample:
    baseline: np.ndarray
    variant: np.ndarray
    clusters: tuple[np.ndarray, np.ndarray]
    paired: bool


def _codes(units: list[Unit], index: dict[str, int]) -> np.ndarray:
    return np.array([index.setdefault(u[0], len(index)) for u in units], dtype=int)


def _sample(b: dict[Unit, float], v: dict[Unit, float], paired: bool) -> _Sample:
    index: dict[str, int] = {}
    if paired:
        common = sorted(set(b) & set(v))
        codes = _codes(common, index)
        arrays = np.array([b[u] for u in common]), np.array([v[u] for u in common])
        return _Sample(arrays[0], arrays[1], (codes, codes), True)
    bu, vu = sorted(b), sorted(v)
    clusters = (_codes(bu, index), _codes(vu, index))
    return _Sample(np.array([b[u] for u in bu]), np.array([v[u] for u in vu]), clusters, False)


def _infer(s: _Sample, direction: int, margin: float, spec: ExperimentSpec) -> Any:
    if len(s.baseline) < 2 or len(s.variant) < 2:
        return None
    if s.paired:
        x = stats.grouped(direction * (s.variant - s.baseline), s.clusters[0])
        return stats.paired(x, margin, spec.test, spec.alpha, spec.seed)
    var = stats.grouped(direction * s.variant, s.clusters[1])
    base = stats.grouped(direction * s.baseline, s.clusters[0])
    return stats.unpaired(var, base, margin, spec.test, spec.alpha, spec.seed)


def _arm_means(s: _Sample) -> tuple[float | None, float | None]:
    """Paired: unit means; unpaired: means of cluster means (what the test compares)."""
    if not len(s.baseline) or not len(s.variant):
        return (float(s.baseline.mean()) if len(s.baseline) else None,
                float(s.variant.mean()) if len(s.variant) else None)  # fmt: skip
    if s.paired:
        return float(s.baseline.mean()), float(s.variant.mean())
    b = stats.grouped(s.baseline, s.clusters[0]).means.mean()
    v = stats.grouped(s.variant, s.clusters[1]).means.mean()
    return float(b), float(v)


def _result(name: str, role: str, s: _Sample, inf: Any, spec: ExperimentSpec) -> MetricResult:
    b, v = _arm_means(s)
    delta = None if b is None or v is None else v - b
    if inf is None:
        return MetricResult(name, role, b, v, delta, None, None, None, len(s.baseline),
                            len(s.variant), "n/a")  # fmt: skip
    d = METRICS[name].direction
    lo, hi = inf.ci
    ci = (lo, hi) if d > 0 else (-hi, -lo)  # back from the improvement orientation
    return MetricResult(
        name, role, b, v, delta, ci, inf.p_two_sided, None, len(s.baseline), len(s.variant),
        inf.test, p_better=inf.p_better, clusters=inf.clusters, ci_level=1 - 2 * spec.alpha,
    )  # fmt: skip


def roles(spec: ExperimentSpec) -> dict[str, str]:
    out = {spec.primary_metric: "primary"}
    out.update({g.metric: "guardrail" for g in spec.guardrails})
    out.update({m: "secondary" for m in METRICS if m not in out})
    return out


def split_roles(spec: ExperimentSpec) -> dict[str, str]:
    """A split experiment measures the sensor metrics only."""
    return {m: r for m, r in roles(spec).items() if m in SENSOR_METRICS}


@dataclass
class Inputs:
    spec: ExperimentSpec
    baseline: ArmData
    variant: ArmData
    paired: bool = True
    judge_agreement: float | None = None  # None: not measurable (or no judge)
    planned: dict[Unit, int] | None = None  # paired: unit → first-attempt probes it must have
    problems: list[str] = field(default_factory=list)  # found while playing: each → INVALID


def analyse(inp: Inputs) -> Verdict:
    spec = inp.spec
    ub, uv = unit_values(inp.baseline), unit_values(inp.variant)
    margins = {g.metric: g.margin for g in spec.guardrails}
    results: dict[str, stats.Inference | None] = {}
    out: dict[str, MetricResult] = {}
    wanted = split_roles(spec) if inp.baseline.by_thread else roles(spec)
    for name, role in wanted.items():
        s = _sample(ub.get(name, {}), uv.get(name, {}), inp.paired)
        results[name] = _infer(s, METRICS[name].direction, margins.get(name, 0.0), spec)
        out[name] = _result(name, role, s, results[name], spec)
    checks, problems = _checks(inp, out, ub, uv)
    verdict = _decide(spec, out, results, bool(problems))
    _secondary_holm(out)
    reasons = problems or _reasons(spec, verdict, out)
    return Verdict(verdict, reasons, recommend(spec, verdict, out, problems), out, checks)


# ---- checks: anything that makes the comparison unfair -------------------------------------


def _name(u: Unit) -> str:
    return f"{u[0]}/{u[1]}"


def _listed(items: list[str]) -> str:
    more = f" and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return ", ".join(items[:LISTED]) + more


def attrition(inp: Inputs) -> list[str]:
    """Paired units not in both arms with every planned probe (the plan, or else the larger of
    the two arms' counts): "scenario/persona (baseline b, variant v of n)". A replay's units are
    its questions: each must have been asked on both arms."""
    if not inp.paired or inp.baseline.by_thread:
        return []
    got_b = Counter(x.unit for x in (inp.baseline.asked or inp.baseline.probes))
    got_v = Counter(x.unit for x in (inp.variant.asked or inp.variant.probes))
    planned = inp.planned or {u: max(got_b[u], got_v[u]) for u in set(got_b) | set(got_v)}
    return [f"{_name(u)} (baseline {got_b[u]}, variant {got_v[u]} of {n} probes)"
            for u, n in sorted(planned.items()) if got_b[u] != n or got_v[u] != n]  # fmt: skip


def one_sided(ub: dict[str, dict[Unit, float]], uv: dict[str, dict[Unit, float]],
              names: list[str]) -> list[str]:  # fmt: skip
    """Decision metrics defined for a unit in one arm only (precision when one arm retrieved
    nothing, say): pairing would drop those units silently."""
    out = []
    for name in names:
        only = sorted(set(ub.get(name, {})) ^ set(uv.get(name, {})))
        if only:
            out.append(f"{name} is defined in one arm only for {len(only)} unit(s): "
                       f"{_listed([_name(u) for u in only])}")  # fmt: skip
    return out


def judge_coverage(data: ArmData) -> float | None:
    """Share of the arm's probes the judge scored (None: no judge ran)."""
    if not data.probes or not data.judged:
        return None
    return sum(p.run_id in data.judged for p in data.probes) / len(data.probes)


def _judge_problems(inp: Inputs, decisive: list[str]) -> tuple[list[float | None], list[str]]:
    cov = [judge_coverage(inp.baseline), judge_coverage(inp.variant)]
    problems: list[str] = []
    agreement, spec = inp.judge_agreement, inp.spec
    if agreement is not None and agreement < spec.judge_min_agreement:
        limit = spec.judge_min_agreement
        problems.append(f"judge inconsistent: agreement {agreement:.2f} < {limit:.2f}")
    judged = [m for m in decisive if m in JUDGE_METRICS]
    if judged and None not in cov:
        low, gap = min(c or 0.0 for c in cov), abs((cov[0] or 0.0) - (cov[1] or 0.0))
        if low < JUDGE_COVERAGE_MIN or gap > JUDGE_COVERAGE_GAP:
            problems.append(
                f"judge coverage {cov[0]:.2f} (baseline) vs {cov[1]:.2f} (variant) of probes "
                f"scored; {', '.join(judged)} would compare unequal subsets"
            )
    return cov, problems


def _checks(
    inp: Inputs,
    results: dict[str, MetricResult],
    ub: dict[str, dict[Unit, float]],
    uv: dict[str, dict[Unit, float]],
) -> tuple[dict[str, Any], list[str]]:
    spec, problems = inp.spec, list(inp.problems)
    lost = attrition(inp)
    if lost:
        problems.append(f"units missing from an arm (attrition, {len(lost)}): {_listed(lost)}")
    decisive = [r.name for r in results.values() if r.role != "secondary"]
    if inp.paired:
        problems += one_sided(ub, uv, decisive)
    n_b, n_v = inp.baseline.units, inp.variant.units
    srm = stats.srm_pvalue(n_b, n_v)
    if srm < stats.SRM_ALPHA:
        what = "threads" if inp.baseline.by_thread else "probes"
        problems.append(f"sample ratio mismatch: {n_b} vs {n_v} {what} (p={srm:.2g})")
    for r in results.values():
        if r.role != "secondary" and min(r.n_baseline, r.n_variant) < spec.min_sample:
            n = min(r.n_baseline, r.n_variant)
            problems.append(
                f"too few samples for {r.name}: {n} units < min_sample {spec.min_sample}"
            )
    coverage, judge_problems = _judge_problems(inp, decisive)
    problems += judge_problems
    checks = {"probes": [n_b, n_v], "srm_p": srm, "judge_agreement": inp.judge_agreement,
              "judge_coverage": coverage, "paired": inp.paired, "min_sample": spec.min_sample,
              "attrition": lost, "alpha": spec.alpha, "ci_level": 1 - 2 * spec.alpha,
              "power": power_check(spec, results)}  # fmt: skip
    return checks, problems


def power_check(spec: ExperimentSpec, results: dict[str, MetricResult]) -> dict[str, Any]:
    """Power of this experiment's primary test at the spec's minimum detectable effect, at the
    clusters it really had and the level the decision family gives the primary at worst."""
    primary = results[spec.primary_metric]
    mde, sd, target = spec.planning(METRICS[spec.primary_metric])
    level = spec.alpha / (1 + len(spec.guardrails))  # Holm's first step
    k = primary.clusters or 0
    return {"mde": mde, "sd": sd, "target": target, "alpha_primary": level, "clusters": k,
            "power": round(stats.power(k, mde, sd, level), 4),
            "clusters_needed": stats.clusters_needed(mde, sd, level, target)}  # fmt: skip


# ---- the decision ----------------------------------------------------------------------------


def _p(inf: stats.Inference | None, attr: str) -> float:
    return 1.0 if inf is None else float(getattr(inf, attr))


def _decide(
    spec: ExperimentSpec,
    results: dict[str, MetricResult],
    inferences: dict[str, stats.Inference | None],
    invalid: bool,
) -> str:
    names = [g.metric for g in spec.guardrails]
    d = stats.decide(
        invalid,
        _p(inferences[spec.primary_metric], "p_better"),
        [_p(inferences[n], "p_harm") for n in names],
        [_p(inferences[n], "p_noninferior") for n in names],
        spec.alpha,
    )
    results[spec.primary_metric].p_holm = d.p_primary
    for g, p_harm in zip(spec.guardrails, d.p_harm, strict=True):
        r, inf = results[g.metric], inferences[g.metric]
        r.margin, r.p_holm = g.margin, p_harm
        r.p_harm, r.p_noninferior = _p(inf, "p_harm"), _p(inf, "p_noninferior")
    return d.verdict


def _secondary_holm(results: dict[str, MetricResult]) -> None:
    """Holm across the secondary metrics' two-sided p-values (reported; they never decide)."""
    rows = [r for r in results.values() if r.role == "secondary" and r.p_value is not None]
    ps = np.array([r.p_value for r in rows], dtype=float)
    for r, adj in zip(rows, stats.holm(ps) if len(rows) else [], strict=True):
        r.p_holm = float(adj)


# ---- reasons and advice ----------------------------------------------------------------------


def _end(x: float) -> str:
    return f"{x:+.4g}" if math.isfinite(x) else ("-∞" if x < 0 else "+∞")


def ci_text(r: MetricResult) -> str:
    if not r.ci:
        return "[n/a]"
    level = f"{r.ci_level:.0%} " if r.ci_level else ""
    return f"{level}[{_end(r.ci[0])}, {_end(r.ci[1])}]"


def _fmt(r: MetricResult) -> str:
    delta = f"{r.delta:+.4g}" if r.delta is not None else "n/a"
    p = f"{r.p_holm:.3g}" if r.p_holm is not None else "n/a"
    return f"{r.name} {delta} (CI {ci_text(r)}, {r.clusters or 0} clusters, Holm p={p})"


def _reasons(spec: ExperimentSpec, verdict: str, results: dict[str, MetricResult]) -> list[str]:
    primary = results[spec.primary_metric]
    guards = [results[g.metric] for g in spec.guardrails]
    if verdict == stats.ROLLBACK:
        return [f"guardrail worse beyond its margin {r.margin:g}: {_fmt(r)}" for r in guards
                if r.p_holm is not None and r.p_holm < spec.alpha]  # fmt: skip
    if verdict == stats.SHIP:
        return [f"primary better: {_fmt(primary)}", "every guardrail non-inferior"]
    if _primary_better(spec, results):
        why = [f"primary better: {_fmt(primary)}"]
    else:
        why = [_not_better(spec, primary)]
    return why + [_not_shown_text(r) for r in _not_shown(spec, results)]


def significantly_worse(r: MetricResult) -> bool:
    """The whole interval lies on the metric's worse side (a CI end of ±inf never does)."""
    if not r.ci:
        return False
    return r.ci[1] < 0 if METRICS[r.name].direction > 0 else r.ci[0] > 0


def _not_better(spec: ExperimentSpec, primary: MetricResult) -> str:
    if significantly_worse(primary):
        return f"primary significantly worse (its whole CI is on the worse side): {_fmt(primary)}"
    head = f"primary not significantly better at α={spec.alpha}: {_fmt(primary)}"
    if primary.p_better is not None and primary.p_better < spec.alpha:
        head += " (better before Holm's correction across the decision family, not after)"
    if primary.clusters is not None and 2.0**-primary.clusters > spec.alpha / (
        1 + len(spec.guardrails)
    ):
        head += f"; {primary.clusters} clusters cannot show anything at this level"
    return head


def _not_shown_text(r: MetricResult) -> str:
    """The interval end on the worse side, in the metric's units, against the margin."""
    if not r.ci:
        where = f"no interval (too few units) against the margin {r.margin:g}"
    elif METRICS[r.name].direction > 0:
        where = f"its lower bound {_end(r.ci[0])} is below −{r.margin:g}"
    else:
        where = f"its upper bound {_end(r.ci[1])} is above +{r.margin:g}"
    return (f"non-inferiority not shown for {r.name}: {where} (CI {ci_text(r)}, "
            f"p={r.p_noninferior:.3g})")  # fmt: skip


def _not_shown(spec: ExperimentSpec, results: dict[str, MetricResult]) -> list[MetricResult]:
    """Guardrails whose non-inferiority was not shown at α."""
    guards = [results[g.metric] for g in spec.guardrails]
    return [r for r in guards if r.p_noninferior is None or r.p_noninferior >= spec.alpha]


def _primary_better(spec: ExperimentSpec, results: dict[str, MetricResult]) -> bool:
    primary = results[spec.primary_metric]
    return primary.p_holm is not None and primary.p_holm < spec.alpha


def recommend(
    spec: ExperimentSpec, verdict: str, results: dict[str, MetricResult], problems: list[str]
) -> list[str]:
    """Plain-language advice for whoever decides next (a person, or the Manager)."""
    primary = results[spec.primary_metric]
    if verdict == stats.INVALID:
        more = max(spec.min_sample, min(primary.n_baseline, primary.n_variant)) * 3
        return ["Do not act on this result: " + "; ".join(problems) + ".",
                f"Rerun with more dialogs (at least {more}) or fix the cause above."]  # fmt: skip
    if verdict == stats.ROLLBACK:
        return [
            "Do not ship the variant; if it is live, roll back (POST "
            "/v1/selflearn/parameters/rollback).",
            "A guardrail got worse beyond its margin.",
        ]
    if verdict == stats.SHIP:
        return [f"Ship the variant: it improves {primary.name} and keeps every guardrail within "
                "its margin. Activate its parameter version through the Tuner."]  # fmt: skip
    held = [r.name for r in _not_shown(spec, results)]
    if _primary_better(spec, results):
        return [f"Keep the baseline for now: {primary.name} improved, but "
                f"{', '.join(held)} could not be shown to stay within the margin.",
                "Run more dialogs to narrow the guardrail intervals, or accept the risk "
                "explicitly (a person activates the variant's version)."]  # fmt: skip
    if significantly_worse(primary):
        return [f"Keep the baseline: the variant made {primary.name} worse (its whole interval "
                "is on the worse side); do not ship it."]  # fmt: skip
    return [f"Keep the baseline for now: no significant change in {primary.name}.",
            "Run more dialogs to narrow the interval, or try a larger change."]  # fmt: skip
