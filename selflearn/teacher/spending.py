"""Alpha spending across a goal's tests: every experiment whose verdict can change the
parameters in force for a goal (a macro cycle's, a deep cycle's confirmation) is one test of
that goal's family, whatever chose its variant (a lever step, a person's explicit variant, a
rerun of the same seed). The j-th test runs at

    α_j = α · 6 / (π² j²)        (Σ_j α_j = α)

so the chance that any of a goal's tests, however many, ships a variant that is no better (or
fails to roll back a harmful one) stays at most α — the family-wise rate, by the union bound,
whatever the dependence between the tests (reruns replaying the same units included). A macro
cycle that stops at the first SHIP among many lever steps is covered the same way. The record is
the experiments themselves (their frozen specs hold the α they ran at); tests already recorded
at a larger α (before this rule) use up the budget first.
"""

from __future__ import annotations

import math
from typing import Any


def share(j: int) -> float:
    """The j-th test's share of the goal's α (j ≥ 1)."""
    return 6.0 / (math.pi**2 * j * j)


def next_alpha(total: float, spent: list[float]) -> float:
    """α of the next test after tests that spent `spent`: its share, within what is left."""
    left = total - sum(spent)
    return max(0.0, min(total * share(len(spent) + 1), left))


def record(total: float, rows: list[Any]) -> dict[str, Any]:
    """A goal's tests (oldest first: experiment, role, α, verdict) and its budget."""
    tests = [{"experiment_id": str(r["experiment_id"]), "role": r["role"], "alpha": r["alpha"],
              "verdict": r["verdict"], "started_at": r["started_at"]} for r in rows]  # fmt: skip
    spent = [float(t["alpha"]) for t in tests]
    return {"alpha": total, "spent": round(sum(spent), 8), "tests": tests,
            "next_alpha": next_alpha(total, spent)}  # fmt: skip
