"""The Teacher's statistics: tests, confidence intervals, Holm, SRM and the verdict rule.

Distributions and tests come from scipy.stats only. Every test is vectorised over the leading
axis, so one call analyses one experiment (a row) or a thousand simulated ones (the A/A test)
through the same code.

Conventions: for a metric with direction d (+1 higher is better, -1 lower is better), the
differences x = d · (variant − baseline) point the way of improvement. A guardrail with margin M
(metric units, ≥ 0) is
  - harmed when the variant is significantly worse than the margin allows: H1 mean(x) < −M;
  - non-inferior when the variant is significantly not worse than that: H1 mean(x) > −M.
Verdict order: INVALID (SRM, too few samples, judge inconsistent) → ROLLBACK (a guardrail
harmed, Holm-adjusted) → SHIP (primary significantly better, Holm-adjusted, and every guardrail
non-inferior) → HOLD.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

Array = NDArray[np.float64]
PAIRED_TESTS = ("t", "wilcoxon")
UNPAIRED_FOR = {"t": "welch", "wilcoxon": "mann_whitney"}
SRM_ALPHA = 0.001  # a sample ratio this unlikely means the arms did not get the traffic planned


@dataclass(frozen=True)
class PValues:
    two_sided: Array  # no difference, either way
    harm: Array  # worse than the margin allows
    noninferior: Array  # not worse than the margin allows


def _clean(p: Array, mean: Array, alternative: str, constant: Array, extreme: float) -> Array:
    """On constant data t and Wilcoxon give NaN or 0 (t = ±inf). Decide such cases by the exact
    test's most extreme p instead (`extreme`, one-sided; doubled two-sided), never 0: four
    identical pairs are not proof."""
    certain = {"two-sided": mean != 0, "less": mean < 0, "greater": mean > 0}[alternative]
    exact = min(1.0, (2.0 if alternative == "two-sided" else 1.0) * extreme)
    degenerate = np.isnan(p) | constant
    return np.where(degenerate, np.where(certain, exact, 1.0), p)


def _one_sample(x: Array, test: str, alternative: str) -> Array:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if test == "t":
            p = stats.ttest_1samp(x, 0.0, axis=-1, alternative=alternative).pvalue
        else:
            p = stats.wilcoxon(x, axis=-1, alternative=alternative, zero_method="zsplit").pvalue
    sign_test = 0.5 ** x.shape[-1]  # n differences all on one side
    constant = np.ptp(x, axis=-1) == 0
    return _clean(np.asarray(p, dtype=float), x.mean(axis=-1), alternative, constant, sign_test)


def paired_pvalues(x: Array, margin: float, test: str) -> PValues:
    """x: improvement-oriented paired differences, shape (..., n)."""
    shifted = x + margin
    return PValues(
        _one_sample(x, test, "two-sided"),
        _one_sample(shifted, test, "less"),
        _one_sample(shifted, test, "greater"),
    )


def _two_sample(a: Array, b: Array, test: str, alternative: str) -> Array:
    """a vs b (improvement-oriented variant vs baseline)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        if test == "welch":
            p = stats.ttest_ind(a, b, axis=-1, equal_var=False, alternative=alternative).pvalue
        else:
            p = stats.mannwhitneyu(a, b, axis=-1, alternative=alternative).pvalue
    mean = a.mean(axis=-1) - b.mean(axis=-1)
    permutation = 1.0 / math.comb(a.shape[-1] + b.shape[-1], a.shape[-1])  # arms fully apart
    constant = (np.ptp(a, axis=-1) == 0) & (np.ptp(b, axis=-1) == 0)
    return _clean(np.asarray(p, dtype=float), mean, alternative, constant, permutation)


def unpaired_pvalues(variant: Array, baseline: Array, margin: float, test: str) -> PValues:
    """Improvement-oriented samples of each arm (Welch's t or Mann-Whitney U)."""
    shifted = variant + margin
    return PValues(
        _two_sample(variant, baseline, test, "two-sided"),
        _two_sample(shifted, baseline, test, "less"),
        _two_sample(shifted, baseline, test, "greater"),
    )


def holm(p: Array) -> Array:
    """Holm step-down adjusted p-values along the last axis."""
    p = np.asarray(p, dtype=float)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1)
    ranked = np.take_along_axis(p, order, axis=-1) * (m - np.arange(m))
    adjusted = np.minimum(np.maximum.accumulate(ranked, axis=-1), 1.0)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return out


def srm_pvalue(n_baseline: int, n_variant: int, share: float = 0.5) -> float:
    """Chi-square goodness of fit of the observed split against the planned share."""
    total = n_baseline + n_variant
    if total == 0:
        return 1.0
    expected = [total * (1 - share), total * share]
    return float(stats.chisquare([n_baseline, n_variant], expected).pvalue)


def _cluster_stat(values: Array, clusters: NDArray[np.int_]) -> tuple[Array, Array]:
    codes = np.unique(clusters, return_inverse=True)[1]
    sums: Array = np.bincount(codes, weights=values).astype(float)
    counts: Array = np.bincount(codes).astype(float)
    return sums, counts


def paired_ci(
    diffs: Array, clusters: NDArray[np.int_], level: float, resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean difference, resampling whole clusters (scenarios)."""
    sums, counts = _cluster_stat(diffs, clusters)
    if len(sums) < 2:
        mean = float(diffs.mean())
        return mean, mean

    def mean_of(idx: Array, axis: int = -1) -> Array:
        i = idx.astype(int)
        result: Array = sums[i].sum(axis=axis) / counts[i].sum(axis=axis)
        return result

    res = stats.bootstrap(
        (np.arange(len(sums)),), mean_of, vectorized=True, n_resamples=resamples,
        confidence_level=level, method="percentile", rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def unpaired_ci(
    baseline: Array,
    variant: Array,
    clusters: tuple[NDArray[np.int_], NDArray[np.int_]],
    level: float,
    resamples: int,
    seed: int,
) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(variant) − mean(baseline), clusters resampled per arm."""
    b_sums, b_counts = _cluster_stat(baseline, clusters[0])
    v_sums, v_counts = _cluster_stat(variant, clusters[1])
    if len(b_sums) < 2 or len(v_sums) < 2:
        delta = float(variant.mean() - baseline.mean())
        return delta, delta

    def delta_of(ib: Array, iv: Array, axis: int = -1) -> Array:
        b, v = ib.astype(int), iv.astype(int)
        mean_b = b_sums[b].sum(axis=axis) / b_counts[b].sum(axis=axis)
        result: Array = v_sums[v].sum(axis=axis) / v_counts[v].sum(axis=axis) - mean_b
        return result

    res = stats.bootstrap(
        (np.arange(len(b_sums)), np.arange(len(v_sums))), delta_of, vectorized=True,
        n_resamples=resamples, confidence_level=level, method="percentile",
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


INVALID, ROLLBACK, SHIP, HOLD = "INVALID", "ROLLBACK", "SHIP", "HOLD"


def decide(
    invalid: NDArray[np.bool_],
    primary: PValues,
    primary_delta: Array,
    guardrails: list[PValues],
    alpha: float,
) -> tuple[NDArray[np.str_], Array, Array]:
    """Verdicts (one per row) and the Holm-adjusted p-values of the decision family: the
    primary's two-sided test and every guardrail's harm test. Returns (verdicts, adjusted
    primary p, adjusted guardrail harm p with shape (..., guardrails))."""
    family = np.stack([primary.two_sided, *(g.harm for g in guardrails)], axis=-1)
    adjusted = holm(family)
    p_primary, p_harm = adjusted[..., 0], adjusted[..., 1:]
    harmed = (p_harm < alpha).any(axis=-1)
    if guardrails:
        noninferior = np.stack([g.noninferior for g in guardrails], axis=-1) < alpha
        all_noninferior = noninferior.all(axis=-1)
    else:
        all_noninferior = np.ones_like(harmed)
    better = (p_primary < alpha) & (primary_delta > 0)
    verdict = np.where(
        invalid, INVALID, np.where(harmed, ROLLBACK, np.where(better & all_noninferior, SHIP, HOLD))
    )
    return verdict, p_primary, p_harm
