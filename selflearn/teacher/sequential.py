"""Always-valid evidence for the automatic-rollback monitor: a one-sided mixture sequential
probability ratio test (mSPRT; Robbins 1970, Johari, Pekelis & Walsh 2017, the statistic behind
the sequential modes of GrowthBook and Optimizely).

For an estimate θ̂ of a difference with variance V (both from all the data so far), the
likelihood ratio of θ against θ = 0 is exp((θ·θ̂ − θ²/2) / V). Mixed over harms only — θ < 0 with
density 2·φ(θ/τ)/τ — it is

    Λ = 2 · sqrt(V / (V + τ²)) · exp(θ̂² τ² / (2V(V + τ²))) · Φ(−θ̂ τ / sqrt(V (V + τ²))).

Under θ = 0 Λ is a martingale with mean 1, under θ > 0 a supermartingale; by Ville's inequality
P(Λ ever reaches 1/α) ≤ α however often and whenever one looks. So p = min(1, 1/Λ) is valid at
every look at once, and Holm over several such p-values keeps the family-wise rate over all the
looks (the smallest true-null p must fall under α/|true nulls| at some look: probability ≤ α).
The normal likelihood makes this asymptotic for means of independent units (here: threads).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_ndtr

Array = NDArray[np.float64]
LOG2 = float(np.log(2.0))


def log_mixture(theta: Array, var: Array, tau: float) -> Array:
    """log Λ for estimates `theta` (harm: negative) with variances `var`, elementwise.
    var = 0 is certainty: +inf when theta < 0, −inf otherwise."""
    theta, var = np.asarray(theta, dtype=float), np.asarray(var, dtype=float)
    t2 = tau * tau
    safe = np.where(var > 0, var, 1.0)
    spread = safe * (safe + t2)
    log_lr = (LOG2 + 0.5 * np.log(safe / (safe + t2)) + theta**2 * t2 / (2 * spread)
              + log_ndtr(-theta * tau / np.sqrt(spread)))  # fmt: skip
    certain = np.where(theta < 0, np.inf, -np.inf)
    out: Array = np.where(var > 0, log_lr, certain)
    return out


def p_value(log_lr: Array) -> Array:
    """The always-valid p-value of a log Λ: min(1, 1/Λ)."""
    out: Array = np.minimum(1.0, np.exp(-np.asarray(log_lr, dtype=float)))
    return out
