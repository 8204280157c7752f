"""Percentiles and latency summaries for the benchmark tables."""

from __future__ import annotations

import math
from collections.abc import Sequence

PCTS = (50, 95, 99)


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), linear interpolation between order statistics.

    Same as numpy's default: rank (n - 1) * p / 100 in the sorted values.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def percentile_or_none(values: Sequence[float], p: float) -> float | None:
    """`percentile`, or None for no values (a table cell left empty)."""
    return percentile(values, p) if values else None


def mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean, or None for no values."""
    return sum(values) / len(values) if values else None


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, mean, min, p50, p95, p99, max; NaN statistics when there are no values."""
    if not values:
        return {"n": 0, **dict.fromkeys(("mean", "min", "p50", "p95", "p99", "max"), math.nan)}
    return {
        "n": len(values),
        "mean": sum(values) / len(values),
        "min": min(values),
        **{f"p{p}": percentile(values, p) for p in PCTS},
        "max": max(values),
    }
