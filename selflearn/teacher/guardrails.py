"""Automatic rollback: the active parameter version watched against a concurrent control.

While a version is monitored (its first `horizon` after activation) the parameter source keeps a
share of threads on the last good version (paramsource.control_for), so the comparison is like
with like: the same users, the same hours, the same load and outages on both sides. Every
period the monitor looks at all client runs of both arms since the activation:

- client traffic only (`client_type = 'client'`): emulator batches, test runs and benchmarks are
  never compared; users without history (no client run before the activation) are ignored;
- the unit is the thread (a thread's runs are correlated): its mean per rule;
- per rule, an always-valid one-sided test that the active arm is worse than the control by more
  than the rule's margin (sequential.log_mixture, τ = the margin), so looking every minute for a
  week costs nothing in false alarms;
- robust to any one tenant: the evidence must hold with every single user left out (and still
  meet the minimum evidence without them), so one user's traffic cannot cause a rollback;
- Holm across the rules on the always-valid p-values, at α;
- minimum evidence: each arm at least `min_threads` threads from `min_users` users;
- persistence: a rule flagged on `persist` consecutive looks.

Guarantee (normal approximation of thread means): while a version is monitored, the probability
that it is ever rolled back although no rule is worse than its margin is at most α, whatever the
number of looks. A breach is audited (`guardrail_breach`) and the Tuner rolls back to a copy of
the last good version (`auto_rollback`) — only if the version is still the active one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from maas.errors import Conflict
from maas.runtime.loops import wait_any
from selflearn import tuner
from selflearn.queries import q
from selflearn.teacher import sequential, stats

log = logging.getLogger(__name__)
Array = NDArray[np.float64]


@dataclass(frozen=True)
class Rule:
    metric: str  # failure_rate | found_anything_rate | latency_ms | tokens_per_run
    direction: int  # +1 higher is better, -1 lower is better
    margin: float  # metric units; also the scale τ of the harms the test looks for


RULES = (
    Rule("failure_rate", -1, 0.05),
    Rule("found_anything_rate", 1, 0.10),
    Rule("latency_ms", -1, 1000.0),
    Rule("tokens_per_run", -1, 500.0),
)


@dataclass(frozen=True)
class Config:
    alpha: float = 0.05  # family-wise, over the rules and every look of one version
    persist: int = 3  # consecutive looks a rule must stay flagged
    min_threads: int = 20  # per arm
    min_users: int = 5  # per arm, users with history
    horizon_s: float = 7 * 24 * 3600.0  # monitored (and controlled) this long after activation


@dataclass(frozen=True)
class Threads:
    """One row per thread of the two arms: which arm, whose, and its mean per rule."""

    control: NDArray[np.bool_]
    user: NDArray[np.int_]  # dense user codes
    values: dict[str, Array]

    @property
    def size(self) -> int:
        return len(self.control)


def threads_of(rows: list[Any]) -> Threads:
    """From tuner_monitor_threads rows (user_id, active, runs, failed, found, latency, timed,
    tokens)."""
    users: dict[Any, int] = {}
    codes = np.array([users.setdefault(r["user_id"], len(users)) for r in rows], dtype=int)
    runs = np.array([r["runs"] for r in rows], dtype=float)
    timed = np.array([max(r["timed"], 1) for r in rows], dtype=float)
    values = {
        "failure_rate": np.array([r["failed"] for r in rows], dtype=float) / runs,
        "found_anything_rate": np.array([r["found"] for r in rows], dtype=float) / runs,
        "latency_ms": np.array([r["latency"] or 0.0 for r in rows], dtype=float) / timed,
        "tokens_per_run": np.array([r["tokens"] or 0.0 for r in rows], dtype=float) / runs,
    }
    control = np.array([not r["active"] for r in rows], dtype=bool)
    return Threads(control, codes, values)


@dataclass(frozen=True)
class RuleLook:
    rule: Rule
    active: float
    control: float
    log_lr: float  # the weakest evidence over leaving out each user (and none)
    p: float  # always-valid p = min(1, 1/Λ)
    p_holm: float
    flagged: bool


@dataclass(frozen=True)
class Look:
    enough: bool
    threads: tuple[int, int]  # active, control
    users: tuple[int, int]
    rules: tuple[RuleLook, ...] = ()

    def flagged(self) -> list[RuleLook]:
        return [r for r in self.rules if r.flagged]


@dataclass(frozen=True)
class Sums:
    """Per arm (row 0 active, row 1 control) and user (columns): threads, Σ thread value and
    Σ value² of one rule's metric. Enough to test with any one user left out."""

    n: Array
    s: Array
    q: Array


def sums_of(t: Threads, metric: str) -> Sums:
    users, values = int(t.user.max()) + 1 if t.size else 0, t.values[metric]
    out = [np.zeros((2, users)) for _ in range(3)]
    for arm, mask in enumerate((~t.control, t.control)):
        u, v = t.user[mask], values[mask]
        out[0][arm] = np.bincount(u, minlength=users)
        out[1][arm] = np.bincount(u, weights=v, minlength=users)
        out[2][arm] = np.bincount(u, weights=v * v, minlength=users)
    return Sums(*out)


def _log_lr(n: Array, s: Array, q: Array, rule: Rule) -> Array:
    """log Λ of "active worse than control by more than the margin" (arrays: (2, cases))."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        var = np.maximum(q - n * mean**2, 0.0) / np.maximum(n - 1, 1)
        theta = rule.direction * (mean[0] - mean[1]) + rule.margin
        out = sequential.log_mixture(theta, var[0] / n[0] + var[1] / n[1], rule.margin)
    return out


def _leave_one_out(x: Array) -> Array:
    """Column 0: the arm's total; column 1 + u: the total without user u."""
    total = x.sum(axis=1, keepdims=True)
    out: Array = np.hstack([total, total - x])
    return out


def _weakest(sums: Sums, rule: Rule, cfg: Config) -> float:
    """The weakest log Λ over: everyone, and each user left out (a case without the minimum
    evidence counts as no evidence)."""
    n, s, q = (_leave_one_out(x) for x in (sums.n, sums.s, sums.q))
    present = _leave_one_out((sums.n > 0).astype(float))
    enough = ((n >= cfg.min_threads) & (present >= cfg.min_users)).all(axis=0)
    return float(np.where(enough, _log_lr(n, s, q, rule), -np.inf).min())


def decide_look(sums: dict[str, Sums], rules: tuple[Rule, ...], cfg: Config) -> Look:
    """One look from the arms' sums per rule: the minimum evidence, each rule's weakest
    always-valid evidence, Holm across the rules at α (persistence: Watch)."""
    first = sums[rules[0].metric]
    n = (int(first.n[0].sum()), int(first.n[1].sum()))
    users = (int((first.n[0] > 0).sum()), int((first.n[1] > 0).sum()))
    if min(n) < cfg.min_threads or min(users) < cfg.min_users:
        return Look(False, n, users)
    evidence = [_weakest(sums[r.metric], r, cfg) for r in rules]
    p = sequential.p_value(np.array(evidence))
    adjusted = stats.holm(p)
    looks = []
    for rule, lr, pi, ph in zip(rules, evidence, p, adjusted, strict=True):
        a, c = (float(sums[rule.metric].s[i].sum() / max(n[i], 1)) for i in (0, 1))
        looks.append(RuleLook(rule, a, c, lr, float(pi), float(ph), bool(ph < cfg.alpha)))
    return Look(True, n, users, tuple(looks))


def evaluate(t: Threads, rules: tuple[Rule, ...] = RULES, cfg: Config = Config()) -> Look:
    """One look at the two arms' threads (no persistence here: Watch)."""
    return decide_look({r.metric: sums_of(t, r.metric) for r in rules}, rules, cfg)


@dataclass
class Watch:
    """Consecutive flagged looks per rule, for the version being watched."""

    version: int | None = None
    streak: dict[str, int] = field(default_factory=dict)
    looks: int = 0

    def update(self, version: int, look: Look) -> None:
        """Count this look (a new version starts afresh; a look without enough evidence breaks
        every streak)."""
        if version != self.version:
            self.version, self.streak, self.looks = version, {}, 0
        self.looks += 1
        if not look.enough:
            self.streak = {}
        for r in look.rules:
            self.streak[r.rule.metric] = self.streak.get(r.rule.metric, 0) + 1 if r.flagged else 0

    def lasting(self, look: Look, persist: int) -> list[RuleLook]:
        return [r for r in look.flagged() if self.streak.get(r.rule.metric, 0) >= persist]


def _reason(r: RuleLook, look: Look, active: str, control: str) -> str:
    m = r.rule
    return (f"guardrail {m.metric} degraded on {active}: {r.active:.4g} vs {r.control:.4g} on "
            f"the concurrent control {control} (margin {m.margin:g}, always-valid p="
            f"{r.p:.2g}, Holm p={r.p_holm:.2g}; {look.threads[0]} vs {look.threads[1]} "
            f"threads of {look.users[0]} vs {look.users[1]} users)")  # fmt: skip


async def arms(conn: Any, fallback_label: str, horizon_s: float) -> tuple[Any, Any, str] | None:
    """(active version, last good version or None, control label) while the active version is
    monitored; None otherwise."""
    current = await tuner.active(conn)
    if current is None or current["activated_at"] is None:
        return None
    age = await conn.fetchval(q("tuner_age_s"), current["activated_at"])
    if age > horizon_s:
        return None
    good = await conn.fetchrow(q("tuner_last_good"), current["version"])
    return current, good, good["label"] if good is not None else fallback_label


async def look(conn: Any, current: Any, control: str, cfg: Config,
               rules: tuple[Rule, ...] = RULES) -> Look:  # fmt: skip
    rows = await conn.fetch(
        q("tuner_monitor_threads"), current["label"], control, current["activated_at"]
    )
    return evaluate(threads_of(rows), rules, cfg)


async def roll_back(conn: Any, current: Any, good: Any, look: Look, found: list[RuleLook],
                    control: str) -> int | None:  # fmt: skip
    reasons = [_reason(r, look, current["label"], control) for r in found]
    change = tuner.Change("teacher", "auto-rollback monitor", "; ".join(reasons),
                          current["experiment_id"])  # fmt: skip
    details = {r.rule.metric: {"active": r.active, "control": r.control, "margin": r.rule.margin,
                               "p": r.p, "p_holm": r.p_holm, "threads": list(look.threads),
                               "users": list(look.users)} for r in found}  # fmt: skip
    async with conn.transaction():
        await tuner.audit(conn, "guardrail_breach", change, current["version"],
                          good["version"] if good else None, details=details)  # fmt: skip
        new = await tuner.rollback_parameters(
            conn, change, "auto_rollback", details, expected=current["version"]
        )
    log.warning("auto-rollback: %s", change.reason)
    return new


@dataclass
class Monitor:
    pool: Callable[[], Any]
    period_s: float
    config: Config = field(default_factory=Config)
    on_change: Callable[[], None] = lambda: None
    fallback_label: Callable[[], Awaitable[str]] | None = None  # control with no good version
    rules: tuple[Rule, ...] = RULES
    watch: Watch = field(default_factory=Watch)
    last: Look | None = None

    async def _fallback(self) -> str:
        return await self.fallback_label() if self.fallback_label else "builtin"

    async def check(self, conn: Any) -> int | None:
        """One look; after a persistent breach, roll back and return the new active version
        (None: no breach, or fell back to MaaS's own parameters)."""
        found = await arms(conn, await self._fallback(), self.config.horizon_s)
        if found is None:
            return None
        current, good, control = found
        self.last = await look(conn, current, control, self.config, self.rules)
        self.watch.update(current["version"], self.last)
        lasting = self.watch.lasting(self.last, self.config.persist)
        if not lasting:
            return None
        try:
            return await roll_back(conn, current, good, self.last, lasting, control)
        except Conflict as exc:  # another process rolled back or switched first
            log.info("auto-rollback skipped: %s", exc)
            return None

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await wait_any(self.period_s, stop)
            if stop.is_set():
                return
            try:
                async with self.pool().acquire() as conn:
                    await self.check(conn)
                self.on_change()  # a rollback (or a change made elsewhere) reaches runs now
            except Exception as exc:  # noqa: BLE001 (task boundary: MaaS keeps serving)
                log.warning("auto-rollback monitor: %s: %s", type(exc).__name__, exc)
