"""Simulated days of live traffic through the automatic-rollback monitor's decision code
(guardrails.decide_look and Watch), for `maas experiment simulate --monitor`.

Users with history (60 by default) open threads at their own rates (heavy-tailed: a few users
make most of the traffic); each thread has a few runs whose outcomes cluster within the thread
and the user: a user's found-anything rate, latency and token use are their own, a thread moves
around its user's level. A share of threads is in the concurrent control (as the parameter
source assigns them). The active arm is identical (A/A) or worse by `harm` (per rule, in the
rule's units: found-anything −0.3, latency +2000 ms, …). The monitor looks every `period_min`
minutes for `days` days; the result is the share of simulated versions rolled back by the end of
each day (cumulative), with its Monte Carlo standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selflearn.teacher.guardrails import RULES, Config, Look, Sums, Watch, decide_look


@dataclass(frozen=True)
class Traffic:
    users: int = 60
    threads_per_user_day: float = 6.0  # mean over users; each user's rate is lognormal around it
    runs_per_thread: float = 3.0  # mean: 1 + Poisson
    share: float = 0.1  # threads in the control
    period_min: float = 1.0  # the monitor's period (MAAS_SELFLEARN_AUTO_ROLLBACK_S = 60)
    harm: dict[str, float] = field(default_factory=dict)  # active arm's shift per rule


@dataclass(frozen=True)
class _Users:
    rate: np.ndarray  # threads per look
    found: np.ndarray
    latency: np.ndarray  # median ms
    tokens: np.ndarray


def _users(rng: np.random.Generator, t: Traffic) -> _Users:
    rate = rng.lognormal(0, 1.0, t.users)
    rate *= t.threads_per_user_day / rate.mean() * t.period_min / 1440
    return _Users(rate, rng.beta(6, 2, t.users), rng.lognormal(math.log(700), 0.5, t.users),
                  rng.normal(400, 80, t.users).clip(50))  # fmt: skip


def _threads(rng: np.random.Generator, u: _Users, t: Traffic) -> dict[str, Any]:
    """The threads opened during one period: user, arm, and their means per rule."""
    counts = rng.poisson(u.rate)
    user = np.repeat(np.arange(len(counts)), counts)
    k = len(user)
    control = rng.random(k) < t.share
    runs = 1 + rng.poisson(t.runs_per_thread - 1, k)
    hurt = {m: np.where(control, 0.0, d) for m, d in t.harm.items()}
    p = (u.found[user] + rng.normal(0, 0.1, k) + hurt.get("found_anything_rate", 0)).clip(0, 1)
    latency = u.latency[user] * rng.lognormal(0, 0.3 / np.sqrt(runs))
    values = {
        "failure_rate": rng.binomial(runs, 0.01 + hurt.get("failure_rate", 0)) / runs,
        "found_anything_rate": rng.binomial(runs, p) / runs,
        "latency_ms": latency + hurt.get("latency_ms", 0),
        "tokens_per_run": u.tokens[user] + rng.normal(0, 50 / np.sqrt(runs))
        + hurt.get("tokens_per_run", 0),
    }  # fmt: skip
    return {"user": user, "control": control, "values": values}


def _add(sums: dict[str, Sums], new: dict[str, Any]) -> None:
    for metric, s in sums.items():
        v = new["values"][metric]
        for arm, mask in enumerate((~new["control"], new["control"])):
            u, x = new["user"][mask], v[mask]
            s.n[arm] += np.bincount(u, minlength=s.n.shape[1])
            s.s[arm] += np.bincount(u, weights=x, minlength=s.n.shape[1])
            s.q[arm] += np.bincount(u, weights=x * x, minlength=s.n.shape[1])


def version(rng: np.random.Generator, days: float, t: Traffic, cfg: Config) -> float | None:
    """Hours after activation at which one simulated version was rolled back (None: never)."""
    users = _users(rng, t)
    sums = {r.metric: Sums(*(np.zeros((2, t.users)) for _ in range(3))) for r in RULES}
    watch = Watch()
    for i in range(int(days * 1440 / t.period_min)):
        _add(sums, _threads(rng, users, t))
        look: Look = decide_look(sums, RULES, cfg)
        watch.update(1, look)
        if watch.lasting(look, cfg.persist):
            return (i + 1) * t.period_min / 60
    return None


def run(runs: int, days: int, t: Traffic, cfg: Config, seed: int = 1) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    hours = [version(rng, days, t, cfg) for _ in range(runs)]
    per_day = []
    for d in range(1, days + 1):
        rate = sum(h is not None and h <= 24 * d for h in hours) / runs
        per_day.append(
            {
                "day": d,
                "rolled_back": round(rate, 5),
                "se": round(math.sqrt(max(rate * (1 - rate), 1 / runs) / runs), 5),
            }
        )
    done = sorted(h for h in hours if h is not None)
    return {"runs": runs, "days": days, "harm": t.harm, "alpha": cfg.alpha,
            "period_min": t.period_min, "users": t.users, "share": t.share,
            "per_day": per_day, "median_hours": done[len(done) // 2] if done else None}  # fmt: skip


def table(result: dict[str, Any]) -> str:
    harm = ", ".join(f"{k} {v:+g}" for k, v in result["harm"].items()) or "none (A/A)"
    lines = [f"monitor: {result['runs']} simulated versions, {result['users']} users, "
             f"{result['share']:.0%} control, a look every {result['period_min']:g} min, "
             f"α = {result['alpha']}; harm: {harm}",
             "day   rolled back (cumulative)"]  # fmt: skip
    for d in result["per_day"]:
        lines.append(f"{d['day']:>3}   {d['rolled_back']:.4f} ± {d['se']:.4f}")
    if result["median_hours"] is not None:
        lines.append(f"median time to rollback: {result['median_hours']:.1f} h")
    return "\n".join(lines)
