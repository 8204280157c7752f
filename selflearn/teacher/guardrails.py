"""Automatic rollback: watch the active parameter version's guardrails on live traffic.

Every period, the active version's last `window` chat runs (sensor_events) are compared with
the last good version's last `window` runs. A guardrail is breached when the active version is
significantly worse than its margin allows (the Teacher's harm test: Welch's t on per-run values
shifted by the margin, one-sided, at α). Then the breach is audited and the Tuner rolls back (a
new version copying the last good one); the reason names the metric, both values and the margin.
Nothing happens while either window holds fewer than `window` runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from maas.runtime.loops import wait_any
from selflearn import tuner
from selflearn.queries import q
from selflearn.teacher import stats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    metric: str  # failure_rate | found_anything_rate | latency_ms | tokens_per_run
    direction: int  # +1 higher is better, -1 lower is better
    margin: float  # metric units


RULES = (
    Rule("failure_rate", -1, 0.05),
    Rule("found_anything_rate", 1, 0.10),
    Rule("latency_ms", -1, 1000.0),
    Rule("tokens_per_run", -1, 500.0),
)


@dataclass(frozen=True)
class Breach:
    rule: Rule
    active: float
    good: float
    p_harm: float
    window: int

    def reason(self, active_label: str, good_label: str) -> str:
        r = self.rule
        return (f"guardrail {r.metric} degraded on {active_label}: {self.active:.4g} vs "
                f"{self.good:.4g} on {good_label} (margin {r.margin:g}, p={self.p_harm:.2g}, "
                f"last {self.window} runs each)")  # fmt: skip


_PER_RUN: dict[str, Callable[[Any], float]] = {
    "failure_rate": lambda r: float(r["status"] == "FAILED"),
    "found_anything_rate": lambda r: float(r["found_anything"]),
    "latency_ms": lambda r: float(r["latency_ms"]),
    "tokens_per_run": lambda r: float(r["tokens"]),
}


def per_run(rows: list[Any], metric: str) -> np.ndarray:
    value = _PER_RUN[metric]
    return np.array([value(r) for r in rows], dtype=float)


def breaches(
    active_rows: list[Any], good_rows: list[Any], rules: tuple[Rule, ...], alpha: float
) -> list[Breach]:
    found = []
    for rule in rules:
        a, g = per_run(active_rows, rule.metric), per_run(good_rows, rule.metric)
        p = stats.unpaired_pvalues(rule.direction * a, rule.direction * g, rule.margin, "welch")
        if float(p.harm) < alpha:
            found.append(Breach(rule, float(a.mean()), float(g.mean()), float(p.harm), len(a)))
    return found


async def check(
    conn: Any, window: int, rules: tuple[Rule, ...] = RULES, alpha: float = 0.05
) -> int | None:
    """One look; after a breach, roll back and return the new active version (None: no breach,
    or fell back to MaaS's own parameters)."""
    current = await tuner.active(conn)
    if current is None:
        return None
    good = await conn.fetchrow(q("tuner_last_good"), current["version"])
    if good is None:
        return None
    active_rows = await conn.fetch(q("tuner_window"), current["label"], window)
    good_rows = await conn.fetch(q("tuner_window"), good["label"], window)
    if min(len(active_rows), len(good_rows)) < window:
        return None
    found = breaches(active_rows, good_rows, rules, alpha)
    if not found:
        return None
    return await _roll_back(conn, current, good, found)


async def _roll_back(conn: Any, current: Any, good: Any, found: list[Breach]) -> int | None:
    reasons = [b.reason(current["label"], good["label"]) for b in found]
    change = tuner.Change("teacher", "auto-rollback monitor", "; ".join(reasons),
                          current["experiment_id"])  # fmt: skip
    details = {b.rule.metric: {"active": b.active, "good": b.good, "margin": b.rule.margin,
                               "p_harm": b.p_harm, "window": b.window} for b in found}  # fmt: skip
    async with conn.transaction():
        await tuner.audit(conn, "guardrail_breach", change, current["version"], good["version"],
                          details=details)  # fmt: skip
        new = await tuner.rollback_parameters(conn, change, "auto_rollback", details)
    log.warning("auto-rollback: %s", change.reason)
    return new


@dataclass
class Monitor:
    pool: Callable[[], Any]
    period_s: float
    window: int
    on_change: Callable[[], None] = lambda: None

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await wait_any(self.period_s, stop)
            if stop.is_set():
                return
            try:
                async with self.pool().acquire() as conn:
                    await check(conn, self.window)
                self.on_change()  # a rollback (or a change made elsewhere) reaches runs now
            except Exception as exc:  # task boundary: MaaS keeps serving
                log.warning("auto-rollback monitor: %s: %s", type(exc).__name__, exc)
