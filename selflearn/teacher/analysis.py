"""From two arms' data to a verdict: per-metric deltas, CIs, p-values, checks, recommendations.

Paired when both arms ran the same units (scenario × persona of one seed): paired t or Wilcoxon on
the unit differences, bootstrap CI resampling scenarios. Otherwise Welch's t or Mann-Whitney U,
bootstrap CI resampling each arm's scenarios. Decision rule and Holm: stats.decide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from selflearn.teacher import stats
from selflearn.teacher.metrics import METRICS, SENSOR_METRICS, ArmData, Unit, unit_values
from selflearn.teacher.spec import ExperimentSpec

NAN = float("nan")


@dataclass
class MetricResult:
    name: str
    role: str  # primary | guardrail | secondary
    baseline: float | None
    variant: float | None
    delta: float | None  # variant − baseline, in the metric's units
    ci: tuple[float, float] | None
    p_value: float | None  # two-sided, unadjusted
    p_holm: float | None  # primary: superiority; guardrail: harm (Holm, decision family)
    n_baseline: int
    n_variant: int
    test: str
    margin: float | None = None
    p_noninferior: float | None = None
    p_harm: float | None = None


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


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    """NaN is not JSON: None instead; CIs as lists; floats rounded for reading."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, float):
            out[k] = None if np.isnan(v) else float(f"{v:.6g}")
        elif isinstance(v, tuple | list):
            out[k] = [None if np.isnan(x) else float(f"{x:.6g}") for x in v]
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


def _pvalues(s: _Sample, direction: int, margin: float, test: str) -> stats.PValues:
    if len(s.baseline) < 2 or len(s.variant) < 2:
        nan = np.array(NAN)
        return stats.PValues(nan, nan, nan)
    if s.paired:
        return stats.paired_pvalues(direction * (s.variant - s.baseline), margin, test)
    kind = stats.UNPAIRED_FOR[test]
    return stats.unpaired_pvalues(direction * s.variant, direction * s.baseline, margin, kind)


def _ci(s: _Sample, spec: ExperimentSpec) -> tuple[float, float] | None:
    if len(s.baseline) < 2 or len(s.variant) < 2:
        return None
    level, n, seed = 1 - spec.alpha, spec.bootstrap_resamples, spec.seed
    if s.paired:
        return stats.paired_ci(s.variant - s.baseline, s.clusters[0], level, n, seed)
    return stats.unpaired_ci(s.baseline, s.variant, s.clusters, level, n, seed)


def _mean(a: np.ndarray) -> float | None:
    return float(a.mean()) if len(a) else None


def _result(name: str, role: str, s: _Sample, p: stats.PValues, spec: ExperimentSpec) -> Any:
    b, v = _mean(s.baseline), _mean(s.variant)
    test = spec.test if s.paired else stats.UNPAIRED_FOR[spec.test]
    return MetricResult(
        name, role, b, v, None if b is None or v is None else v - b, _ci(s, spec),
        float(p.two_sided), None, len(s.baseline), len(s.variant), test,
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
    judge_agreement: float | None = None


def analyse(inp: Inputs) -> Verdict:
    spec = inp.spec
    ub, uv = unit_values(inp.baseline), unit_values(inp.variant)
    margins = {g.metric: g.margin for g in spec.guardrails}
    results: dict[str, MetricResult] = {}
    pvals: dict[str, stats.PValues] = {}
    wanted = split_roles(spec) if inp.baseline.by_thread else roles(spec)
    for name, role in wanted.items():
        s = _sample(ub.get(name, {}), uv.get(name, {}), inp.paired)
        pvals[name] = _pvalues(s, METRICS[name].direction, margins.get(name, 0.0), spec.test)
        results[name] = _result(name, role, s, pvals[name], spec)
    checks, problems = _checks(inp, results)
    verdict = _decide(spec, results, pvals, bool(problems))
    _secondary_holm(results)
    reasons = problems or _reasons(spec, verdict, results)
    return Verdict(verdict, reasons, recommend(spec, verdict, results, problems), results, checks)


def _checks(inp: Inputs, results: dict[str, MetricResult]) -> tuple[dict[str, Any], list[str]]:
    spec, problems = inp.spec, []
    n_b, n_v = _probe_count(inp.baseline), _probe_count(inp.variant)
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
    agreement = inp.judge_agreement
    if agreement is not None and agreement < spec.judge_min_agreement:
        limit = spec.judge_min_agreement
        problems.append(f"judge inconsistent: agreement {agreement:.2f} < {limit:.2f}")
    checks = {"probes": [n_b, n_v], "srm_p": srm, "judge_agreement": agreement,
              "paired": inp.paired, "min_sample": spec.min_sample}  # fmt: skip
    return checks, problems


def _probe_count(data: ArmData) -> int:
    return data.units


def _decide(
    spec: ExperimentSpec,
    results: dict[str, MetricResult],
    pvals: dict[str, stats.PValues],
    invalid: bool,
) -> str:
    primary = results[spec.primary_metric]
    direction = METRICS[spec.primary_metric].direction
    delta = np.array(direction * (primary.delta if primary.delta is not None else 0.0))
    guards = [pvals[g.metric] for g in spec.guardrails]
    verdicts, p_primary, p_harm = stats.decide(
        np.array(invalid), pvals[spec.primary_metric], delta, guards, spec.alpha
    )
    primary.p_holm = float(p_primary)
    for i, g in enumerate(spec.guardrails):
        r = results[g.metric]
        r.margin, r.p_holm = g.margin, float(p_harm[..., i])
        r.p_harm, r.p_noninferior = float(pvals[g.metric].harm), float(pvals[g.metric].noninferior)
    return str(verdicts)


def _secondary_holm(results: dict[str, MetricResult]) -> None:
    """Holm across the secondary metrics too (reported; they never decide)."""
    rows = [r for r in results.values() if r.role == "secondary" and r.p_value is not None]
    ps = np.array([1.0 if np.isnan(r.p_value or NAN) else r.p_value for r in rows])
    for r, adj in zip(rows, stats.holm(ps) if len(rows) else [], strict=True):
        r.p_holm = float(adj)


def _fmt(r: MetricResult) -> str:
    ci = f"[{r.ci[0]:+.4g}, {r.ci[1]:+.4g}]" if r.ci else "[n/a]"
    delta = f"{r.delta:+.4g}" if r.delta is not None else "n/a"
    p = f"{r.p_holm:.3g}" if r.p_holm is not None else "n/a"
    return f"{r.name} {delta} (CI {ci}, Holm p={p})"


def _reasons(spec: ExperimentSpec, verdict: str, results: dict[str, MetricResult]) -> list[str]:
    primary = results[spec.primary_metric]
    guards = [results[g.metric] for g in spec.guardrails]
    if verdict == stats.ROLLBACK:
        return [f"guardrail worse beyond its margin {r.margin}: {_fmt(r)}" for r in guards
                if r.p_holm is not None and r.p_holm < spec.alpha]  # fmt: skip
    if verdict == stats.SHIP:
        return [f"primary better: {_fmt(primary)}", "every guardrail non-inferior"]
    held = _not_shown(spec, results)
    if _primary_better(spec, results):
        why = [f"primary better: {_fmt(primary)}"]
    else:
        why = [f"primary not significantly better at α={spec.alpha}: {_fmt(primary)}"]
    why += [f"non-inferiority not shown for {r.name}: CI {_ci_text(r)} reaches past the margin "
            f"{r.margin:g} (p={r.p_noninferior:.3g})" for r in held]  # fmt: skip
    return why


def _ci_text(r: MetricResult) -> str:
    return f"[{r.ci[0]:+.4g}, {r.ci[1]:+.4g}]" if r.ci else "[n/a]"


def _not_shown(spec: ExperimentSpec, results: dict[str, MetricResult]) -> list[MetricResult]:
    """Guardrails whose non-inferiority was not shown at α."""
    guards = [results[g.metric] for g in spec.guardrails]
    return [r for r in guards if r.p_noninferior is None or r.p_noninferior >= spec.alpha]


def _primary_better(spec: ExperimentSpec, results: dict[str, MetricResult]) -> bool:
    primary = results[spec.primary_metric]
    better = (primary.delta or 0.0) * METRICS[primary.name].direction > 0
    return better and primary.p_holm is not None and primary.p_holm < spec.alpha


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
    return [f"Keep the baseline for now: no significant change in {primary.name}.",
            "Run more dialogs to narrow the interval, or try a larger change."]  # fmt: skip
