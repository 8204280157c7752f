"""Two `maas bench locomo --json` runs, question by question: what changed beyond noise.

The issue's rule for every retrieval change is "no category may drop more than noise while
another rises"; this says which cells of the table moved beyond noise.

Decision rule, per cell (a metric at a budget, over all questions or one category): the
questions both runs asked are paired; those whose value changed vote up or down, and an exact
two-sided sign test gives the chance of a split at least that lopsided when a change is as likely
to go either way (the null: no effect, only the churn of a second ingest or a reordered tie).
The cells of one comparison are many (2 metrics x budgets x 5 groups, and J at the judge's budget
when both runs were judged), so the verdicts use Holm's
step-down adjustment: the chance of any false "up" or "down" in the table is at most `alpha`
(5 % by default) whatever the cells' correlation. The exact test keeps each cell's error at or
under its level; it ignores by how much a question moved (a budget recall of 1/2 → 1 is one up
vote, as 0 → 1 is). Error rates and power, measured on simulated runs of LoCoMo dev's size
(tests/unit/test_locomo_compare.py): with 4 % of the questions changing either way and no
direction, some cell is called changed in 1.5 % of the runs (each cell at 5 % without Holm:
27.5 %); a category of 156 questions where 10 % of the questions change, 85 % of them upward
(+0.07), is found in 82 % of the runs. Smaller effects in one category (a question or two) are
not distinguishable from a second ingest's churn, and the table says "noise".

The difference of the means comes with a normal-approximation 95 % interval of the mean paired
difference: the size of the change, not the verdict.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from bench.locomo import CATEGORIES

METRICS = ("budget_recall", "answer_in_context")
Z95 = 1.959964


@dataclass(frozen=True)
class Asked:
    """One question's values in one run: metric -> budget -> value."""

    category: int
    values: dict[str, dict[str, float]]


@dataclass(frozen=True)
class Cell:
    metric: str
    budget: str
    group: str  # "overall" or a category number
    n: int
    before: float
    after: float
    low: float  # the 95 % interval of the mean difference
    high: float
    up: int
    down: int
    p: float  # exact two-sided sign test
    p_holm: float = 1.0

    @property
    def diff(self) -> float:
        return self.after - self.before

    def verdict(self, alpha: float) -> str:
        if self.p_holm >= alpha:
            return "noise"
        return "up" if self.up > self.down else "down"


class CompareError(ValueError):
    """The files cannot be compared (not `maas bench locomo --json` output, nothing in common)."""


def load_run(path: Path) -> dict[str, Asked]:
    """question id -> MaaS's values, from a `maas bench locomo --json` file; with `--judge`,
    also the LLM judge's label as metric "judge" at its budget (1 correct, 0 wrong or
    unreadable, as J counts it)."""
    try:
        data = json.loads(path.read_text())
        rows = data["extras"]["per_question"]
        asked = {
            str(r["question_id"]): Asked(int(r["category"]), {m: r["maas"][m] for m in METRICS})
            for r in rows
        }
        judge = data.get("judge")
        for r in judge["per_question"] if judge else ():
            if (mine := asked.get(str(r["question_id"]))) is not None:
                mine.values["judge"] = {str(judge["budget"]): float(bool(r["correct"]))}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CompareError(f"{path}: not a `maas bench locomo --json` file ({exc})") from exc
    return asked


@lru_cache(maxsize=4096)
def sign_test(up: int, down: int) -> float:
    """Exact two-sided sign test: P(a split at least this lopsided | up and down equally
    likely), over the questions that changed. 1.0 when none did."""
    n = up + down
    if n == 0:
        return 1.0
    tail: float = sum(math.comb(n, k) for k in range(min(up, down) + 1)) / 2**n
    return min(1.0, 2 * tail)


def holm(ps: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error at most alpha when p_adj < alpha)."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    adjusted = [1.0] * len(ps)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        adjusted[i] = running
    return adjusted


def cell(metric: str, budget: str, group: str, pairs: Sequence[tuple[float, float]]) -> Cell:
    """One cell from its (before, after) pairs."""
    n = len(pairs)
    diffs = [a - b for b, a in pairs]
    mean_d = sum(diffs) / n
    var = sum((d - mean_d) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    half = Z95 * math.sqrt(var / n)
    up, down = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return Cell(
        metric=metric,
        budget=budget,
        group=group,
        n=n,
        before=sum(b for b, _ in pairs) / n,
        after=sum(a for _, a in pairs) / n,
        low=mean_d - half,
        high=mean_d + half,
        up=up,
        down=down,
        p=sign_test(up, down),
    )


def budgets(before: dict[str, Asked], after: dict[str, Asked], metric: str) -> list[str]:
    """The budgets both runs measured, in numeric order."""
    first = next(iter(before.values())).values[metric]
    second = next(iter(after.values())).values[metric]
    return sorted(set(first) & set(second), key=int)


def compare(before: dict[str, Asked], after: dict[str, Asked]) -> list[Cell]:
    """Every cell (metric x budget x overall and each category), Holm-adjusted together."""
    common = [q for q in before if q in after]
    if not common:
        raise CompareError("the runs have no question in common (other conversations?)")
    judged = all("judge" in run[q].values for run in (before, after) for q in common)
    cells: list[Cell] = []
    for metric in (*METRICS, "judge") if judged else METRICS:
        for budget in budgets(before, after, metric):
            for group in ("overall", *map(str, CATEGORIES)):
                pairs = [
                    (before[q].values[metric][budget], after[q].values[metric][budget])
                    for q in common
                    if group == "overall" or str(before[q].category) == group
                ]
                if pairs:
                    cells.append(cell(metric, budget, group, pairs))
    if not cells:
        raise CompareError("the runs measured no budget in common (see --budgets)")
    adjusted = holm([c.p for c in cells])
    return [replace(c, p_holm=p) for c, p in zip(cells, adjusted, strict=True)]


def _group(c: Cell) -> str:
    return c.group if c.group == "overall" else f"cat{c.group}"


LABELS = {
    "budget_recall": "budget recall",
    "answer_in_context": "answer-in-context",
    "judge": "J (LLM judge)",
}


def render(cells: Sequence[Cell], alpha: float, unmatched: int) -> str:
    header = ["metric", "group", "n", "before", "after", "diff", "95% CI", "up", "down", "p",
              "p (Holm)", "verdict"]  # fmt: skip
    rows = [header] + [
        [
            f"{LABELS[c.metric]}@{c.budget}",
            _group(c),
            str(c.n),
            f"{c.before:.3f}",
            f"{c.after:.3f}",
            f"{c.diff:+.3f}",
            f"[{c.low:+.3f}, {c.high:+.3f}]",
            str(c.up),
            str(c.down),
            f"{c.p:.3g}",
            f"{c.p_holm:.3g}",
            c.verdict(alpha),
        ]
        for c in cells
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([*lines, "", summary(cells, alpha, unmatched)])


def summary(cells: Sequence[Cell], alpha: float, unmatched: int) -> str:
    moved = {v: [c for c in cells if c.verdict(alpha) == v] for v in ("up", "down")}
    said = [
        f"{v}: "
        + (", ".join(f"{LABELS[c.metric]}@{c.budget} {_group(c)}" for c in found) or "none")
        for v, found in moved.items()
    ]
    note = f"; {unmatched} questions in only one run (left out)" if unmatched else ""
    return (
        f"beyond noise (exact sign test, Holm, family-wise error <= {alpha:g}): "
        + "; ".join(said)
        + note
    )


def to_json(cells: Sequence[Cell], alpha: float) -> list[dict[str, Any]]:
    return [{**asdict(c), "diff": c.diff, "verdict": c.verdict(alpha)} for c in cells]


def main(before_path: Path, after_path: Path, alpha: float, out: Path | None) -> int:
    """Print the comparison (and write it as JSON to `out`); 2 when the files do not compare."""
    try:
        before, after = load_run(before_path), load_run(after_path)
        cells = compare(before, after)
    except CompareError as exc:
        print(f"maas bench compare: {exc}", file=sys.stderr)
        return 2
    unmatched = len(before.keys() ^ after.keys())
    print(render(cells, alpha, unmatched))
    if out is not None:
        out.write_text(json.dumps({"alpha": alpha, "cells": to_json(cells, alpha)}, indent=2))
    return 0
