"""The Teacher's statistics: one inference per metric for both the decision and its interval.

Units and clusters. The unit is the pairing unit (an episode); units that share a scenario are
correlated, so every test runs on **clusters** (scenarios): a cluster's total of the unit values
and its number of units. The estimate is the mean over units (Σ totals / Σ sizes).

Tests. Randomization tests, valid at any sample size and for discrete data:
  - paired (`t`): the sign-flip test of the cluster totals about the null (S_k − n_k·δ): all 2^k
    sign patterns up to EXACT_CLUSTERS clusters, FLIPS random ones (seeded) beyond. Its p-value
    is (1 + #{patterns as extreme}) / (patterns + 1), never 0: k clusters can prove at best 2^−k.
    The matching interval is Hartigan's subset means: the α-quantiles of Σ_F S / Σ_F n over the
    flipped subsets F — test and interval are the same inference, so a decision never disagrees
    with its interval;
  - paired (`wilcoxon`): the signed-rank statistic of the cluster means under the same flips;
    interval by inverting that test (bisection on the shift);
  - unpaired (`t`: Welch's statistic, `wilcoxon`: rank sum) on cluster means per arm, by
    permutation of the pooled clusters (all splits up to PERMUTATIONS, random ones beyond).
Every test is one-sided; a two-sided p (reported only) is twice the smaller one.

Conventions: for a metric with direction d (+1 higher is better), x = d·(variant − baseline)
points the way of improvement. Primary: H1 mean(x) > 0. A guardrail with margin M ≥ 0 is
harmed when H1 mean(x) < −M is shown, non-inferior when H1 mean(x) > −M is shown. Interval:
1 − 2α two-sided (each side a one-sided α bound), so "non-inferior" ⇔ its lower bound > −M,
"better" (unadjusted) ⇔ lower bound > 0, "harmed" (unadjusted) ⇔ upper bound < −M.

Verdict order: INVALID (attrition, SRM, too few samples, judge) → ROLLBACK (a guardrail harmed,
Holm-adjusted over the decision family) → SHIP (primary better, Holm-adjusted, and every
guardrail non-inferior) → HOLD.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import stats

Array = NDArray[np.float64]
PAIRED_TESTS = ("t", "wilcoxon")
UNPAIRED_FOR = {"t": "welch", "wilcoxon": "mann_whitney"}
SRM_ALPHA = 0.001  # a sample ratio this unlikely means the arms did not get the traffic planned
EXACT_CLUSTERS = 12  # up to 2^12 sign patterns are enumerated
FLIPS = 4095  # random sign patterns (or permutations) beyond that, plus the observed one
PERMUTATIONS = 20000  # unpaired: all splits of the pooled clusters up to this many
INVALID, ROLLBACK, SHIP, HOLD = "INVALID", "ROLLBACK", "SHIP", "HOLD"


@dataclass(frozen=True)
class Clusters:
    """Values grouped by cluster: each cluster's total and its number of units."""

    totals: Array
    sizes: Array

    @property
    def k(self) -> int:
        return len(self.totals)

    @property
    def mean(self) -> float:
        return float(self.totals.sum() / self.sizes.sum()) if self.k else math.nan

    @property
    def means(self) -> Array:
        out: Array = self.totals / self.sizes
        return out


def grouped(values: Array, clusters: NDArray[np.int_]) -> Clusters:
    codes = np.unique(clusters, return_inverse=True)[1]
    totals: Array = np.bincount(codes, weights=values).astype(float)
    sizes: Array = np.bincount(codes).astype(float)
    return Clusters(totals, sizes)


@dataclass(frozen=True)
class Inference:
    """One metric's tests and interval, all from one randomization distribution."""

    estimate: float
    p_better: float  # H1: mean(x) > 0
    p_worse: float  # H1: mean(x) < 0
    p_harm: float  # H1: mean(x) < −margin
    p_noninferior: float  # H1: mean(x) > −margin
    ci: tuple[float, float]  # 1 − 2α, in x's orientation (±inf: this sample cannot bound it)
    clusters: int
    test: str

    @property
    def p_two_sided(self) -> float:
        return min(1.0, 2 * min(self.p_better, self.p_worse))


# ---- paired: sign-flip tests on cluster totals ---------------------------------------------


@cache
def _all_signs(k: int) -> NDArray[np.int8]:
    """Every sign pattern of k clusters but the identity (the observed data itself)."""
    patterns = np.array(list(itertools.product((1, -1), repeat=k)), dtype=np.int8)
    return patterns[1:]


@lru_cache(maxsize=64)
def _signs(k: int, seed: int) -> NDArray[np.int8]:
    if k <= EXACT_CLUSTERS:
        return _all_signs(k)
    rng = np.random.default_rng(seed)
    signs: NDArray[np.int8] = rng.choice(np.array([1, -1], dtype=np.int8), size=(FLIPS, k))
    unflipped = (signs > 0).all(axis=1)  # the identity is the observed data: flip one sign
    signs[unflipped, rng.integers(0, k, int(unflipped.sum()))] = -1
    return signs


@lru_cache(maxsize=64)
def _flipped(k: int, seed: int) -> Array:
    out: Array = (_signs(k, seed) < 0).astype(float)
    return out


def subset_means(c: Clusters, seed: int = 0) -> Array:
    """Σ_F S / Σ_F n over the subsets F a sign pattern flips, sorted. The sign-flip statistic
    Σ ε (S − nδ) is at least the observed one exactly when δ ≥ the flipped subset's mean, so
    p_better(δ) = (1 + #{r ≤ δ}) / (B + 1) and p_worse(δ) = (1 + #{r ≥ δ}) / (B + 1)."""
    flipped = _flipped(c.k, seed)
    out: Array = np.sort((flipped @ c.totals) / (flipped @ c.sizes))
    return out


def _flip_inference(c: Clusters, margin: float, alpha: float, seed: int) -> Inference:
    r = subset_means(c, seed)
    total = len(r) + 1

    def at_most(d: float) -> float:
        return (1 + np.searchsorted(r, d, side="right")) / total

    def at_least(d: float) -> float:
        return (1 + len(r) - np.searchsorted(r, d, side="left")) / total

    q = math.ceil(alpha * total - 1)  # the q-th smallest subset mean bounds the mean from below
    lo = float(r[q - 1]) if q >= 1 else -math.inf
    hi = float(r[len(r) - q]) if q >= 1 else math.inf
    return Inference(
        c.mean, float(at_most(0.0)), float(at_least(0.0)), float(at_least(-margin)),
        float(at_most(-margin)), (lo, hi), c.k,
        "sign-flip" if c.k <= EXACT_CLUSTERS else "sign-flip (random)",
    )  # fmt: skip


def _signed_ranks(y: Array) -> Array:
    ranks: Array = stats.rankdata(np.abs(y)) * np.sign(y)
    return ranks


def _rank_p(means: Array, signs: NDArray[np.int8], shift: float, upper: bool) -> float:
    """Signed-rank sign-flip p of H1 location > shift (upper) or < shift."""
    s = _signed_ranks(means - shift)
    observed, flipped = s.sum(), signs @ s
    extreme = flipped >= observed - 1e-9 if upper else flipped <= observed + 1e-9
    return float((1 + extreme.sum()) / (len(signs) + 1))


def invert(p_at: Callable[[float], float], alpha: float, low: float, high: float) -> float:
    """The boundary of {δ : p_at(δ) < α} for a p monotone in δ, by bisection inside [low, high]
    (p_at(low) < α ≤ p_at(high), or the reverse)."""
    below = p_at(low) < alpha
    for _ in range(60):
        mid = (low + high) / 2
        if (p_at(mid) < alpha) == below:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def _bounds(p_hi: Callable[[float], float], p_lo: Callable[[float], float], alpha: float,
            span: tuple[float, float]) -> tuple[float, float]:  # fmt: skip
    """Interval by inversion: lower = sup{δ: p_hi(δ) < α}, upper = inf{δ: p_lo(δ) < α}."""
    a, b = span
    width = max(b - a, 1e-6 * max(1.0, abs(a), abs(b)))
    a, b = a - width, b + width
    lo = invert(p_hi, alpha, a, b) if p_hi(a) < alpha else -math.inf
    hi = invert(p_lo, alpha, a, b) if p_lo(b) < alpha else math.inf
    return lo, hi


def _rank_inference(c: Clusters, margin: float, alpha: float, seed: int) -> Inference:
    means, signs = c.means, _signs(c.k, seed)

    def hi(d: float) -> float:
        return _rank_p(means, signs, d, True)

    def lo(d: float) -> float:
        return _rank_p(means, signs, d, False)

    ci = _bounds(hi, lo, alpha, (float(means.min()), float(means.max())))
    return Inference(c.mean, hi(0.0), lo(0.0), lo(-margin), hi(-margin), ci, c.k,
                     "signed-rank")  # fmt: skip


def paired(c: Clusters, margin: float, test: str, alpha: float, seed: int = 0) -> Inference:
    """x = improvement-oriented differences of paired units, grouped by cluster."""
    if test == "wilcoxon":
        return _rank_inference(c, margin, alpha, seed)
    return _flip_inference(c, margin, alpha, seed)


# ---- unpaired: permutation tests on cluster means -------------------------------------------


def _splits(ka: int, kb: int, seed: int) -> NDArray[np.bool_]:
    """Rows: which pooled clusters go to the first arm (every split, or random ones)."""
    n = ka + kb
    if math.comb(n, ka) <= PERMUTATIONS:
        rows = [np.isin(np.arange(n), idx) for idx in itertools.combinations(range(n), ka)]
        return np.array(rows, dtype=bool)
    rng = np.random.default_rng(seed)
    order = np.argsort(rng.random((FLIPS, n)), axis=1) < ka
    return np.vstack([np.arange(n) < ka, order])


def _welch(first: Array, second: Array, masks: NDArray[np.bool_]) -> Array:
    """Welch's t of every split (first arm = mask) of the pooled values (centred first, and a
    spread below rounding taken as none, so tied data give exact ties, not rounding noise)."""
    pooled = np.concatenate([first, second])
    pooled = pooled - pooled.mean()
    na, nb = len(first), len(second)
    m = masks.astype(float)
    sa, sb = m @ pooled, (1 - m) @ pooled
    qa, qb = m @ pooled**2, (1 - m) @ pooled**2
    ma, mb = sa / na, sb / nb
    tiny = 1e-12 * (float(np.abs(pooled).max()) ** 2 + 1e-300)
    va = np.maximum(qa - na * ma**2, 0) / max(na - 1, 1)
    vb = np.maximum(qb - nb * mb**2, 0) / max(nb - 1, 1)
    se = np.sqrt(np.where(va < tiny, 0, va) / na + np.where(vb < tiny, 0, vb) / nb)
    diff = ma - mb
    with np.errstate(divide="ignore", invalid="ignore"):
        certain = np.where(diff == 0, 0.0, np.sign(diff) * np.inf)  # no spread: the sign
        t = np.where(se > 0, diff / np.where(se > 0, se, 1), certain)
    out: Array = t
    return out


def _rank_sum(first: Array, second: Array, masks: NDArray[np.bool_]) -> Array:
    ranks = stats.rankdata(np.concatenate([first, second]))
    out: Array = masks.astype(float) @ ranks
    return out


def _perm_p(a: Array, b: Array, masks: NDArray[np.bool_], stat: str, upper: bool) -> float:
    f = _welch if stat == "welch" else _rank_sum
    values = f(a, b, masks)
    observed = values[0]  # masks[0] is the observed split
    extreme = values >= observed - 1e-9 if upper else values <= observed + 1e-9
    return float(extreme.sum() / len(masks))


def unpaired(
    variant: Clusters, baseline: Clusters, margin: float, test: str, alpha: float, seed: int = 0
) -> Inference:
    """Improvement-oriented values of each arm, grouped by cluster; H0 shifts the variant."""
    a, b = variant.means, baseline.means
    masks = _splits(len(a), len(b), seed)
    masks = masks[~(masks == _identity(len(a), len(b))).all(axis=1)]
    masks = np.vstack([_identity(len(a), len(b)), masks])  # the observed split first
    stat = UNPAIRED_FOR[test]

    def hi(d: float) -> float:
        return _perm_p(a - d, b, masks, stat, True)

    def lo(d: float) -> float:
        return _perm_p(a - d, b, masks, stat, False)

    span = (float(a.min() - b.max()), float(a.max() - b.min()))
    ci = _bounds(hi, lo, alpha, span)
    estimate = float(a.mean() - b.mean())
    name = "permutation " + ("Welch t" if stat == "welch" else "rank sum")
    return Inference(estimate, hi(0.0), lo(0.0), lo(-margin), hi(-margin), ci,
                     min(len(a), len(b)), name)  # fmt: skip


def _identity(ka: int, kb: int) -> NDArray[np.bool_]:
    return np.arange(ka + kb) < ka


# ---- Holm, SRM, the decision, power ----------------------------------------------------------


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


@dataclass(frozen=True)
class Decision:
    verdict: str
    p_primary: float  # Holm-adjusted p of the primary's superiority test
    p_harm: tuple[float, ...]  # Holm-adjusted harm p of each guardrail


def decide(
    invalid: bool,
    primary_better: float,
    harm: list[float],
    noninferior: list[float],
    alpha: float,
) -> Decision:
    """The verdict rule. Decision family (Holm at α): the primary's one-sided superiority test
    and every guardrail's one-sided harm test. Non-inferiority of every guardrail is an
    intersection-union test: each at α, no correction."""
    adjusted = holm(np.array([primary_better, *harm]))
    p_primary, p_harm = float(adjusted[0]), tuple(float(p) for p in adjusted[1:])
    if invalid:
        verdict = INVALID
    elif any(p < alpha for p in p_harm):
        verdict = ROLLBACK
    elif p_primary < alpha and all(p < alpha for p in noninferior):
        verdict = SHIP
    else:
        verdict = HOLD
    return Decision(verdict, p_primary, p_harm)


def power(clusters: int, mde: float, sd: float, alpha: float) -> float:
    """Power of the one-sided paired test at level α to see a true improvement `mde` with
    `clusters` clusters whose mean differences have standard deviation `sd` (the noncentral t
    approximation of the sign-flip test); 0 when 2^−k > α (no pattern is extreme enough)."""
    if clusters < 2 or 2.0**-clusters > alpha:
        return 0.0
    if sd <= 0:
        return 1.0
    df = clusters - 1
    critical = stats.t.ppf(1 - alpha, df)
    return float(stats.nct.sf(critical, df, mde * math.sqrt(clusters) / sd))


@lru_cache(maxsize=256)
def clusters_needed(mde: float, sd: float, alpha: float, target: float, cap: int = 10000) -> int:
    """The fewest clusters whose power reaches `target` (cap when none up to it does): from
    the normal approximation's n, stepped to the noncentral t's."""
    z = stats.norm.ppf(1 - alpha) + stats.norm.ppf(target)
    n = max(2, math.ceil(math.log2(1 / alpha)), int((z * sd / mde) ** 2))
    while n > 2 and power(n - 1, mde, sd, alpha) >= target:
        n -= 1
    while n < cap and power(n, mde, sd, alpha) < target:
        n += 1
    return min(n, cap)


MIN_INTERVAL_CLUSTERS = 5  # fewer clusters than this: no interval of a single arm's mean


def mean_interval(c: Clusters, level: float) -> tuple[float, float] | None:
    """Interval of one arm's mean over units, by the cluster-robust t (k − 1 degrees of
    freedom); None with fewer than MIN_INTERVAL_CLUSTERS clusters, where no method can give an
    interval that deserves its nominal level."""
    if c.k < MIN_INTERVAL_CLUSTERS:
        return None
    n, mean = c.sizes.sum(), c.mean
    var = c.k / (c.k - 1) * float(((c.totals - c.sizes * mean) ** 2).sum()) / n**2
    half = float(stats.t.ppf(0.5 + level / 2, c.k - 1)) * math.sqrt(var)
    return mean - half, mean + half
