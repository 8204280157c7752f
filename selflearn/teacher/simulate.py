"""Simulated experiments through the real analysis and decision code (`maas experiment simulate`).

Each simulated experiment builds both arms as the database would hand them to `analyse()`:
synthetic users (scenario × persona pairs drawn as the emulator's plan draws them, 21 scenarios ×
10 personas) with four probes of two planted facts each, discrete outcomes (a fact is found or
not, an answer hallucinates or not), latencies per run, and the clustering real data has: every
unit of a scenario shares that scenario's difficulty and speed, every unit of a persona its
persona's. Both arms play the same units (paired). The variant's recall probability is the
baseline's plus `effect` (0: an A/A experiment, the arms are identical in distribution).

Spec: primary `retrieval_recall`, guardrails `hallucination_rate` (margin 0.10), `latency_p95_ms`
(margin 150 ms), `answer_accuracy` (margin 0.15). Under A/A the rule's nominal false-SHIP rate is
at most α / (1 + guardrails) (Holm's first step for the one-sided primary), and false ROLLBACK is
far below that (the margins keep the harm nulls away from the truth).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from selflearn.teacher import stats
from selflearn.teacher.analysis import Inputs, analyse
from selflearn.teacher.metrics import ArmData, Judged, Probe, Retrieved, RunCost
from selflearn.teacher.spec import ExperimentSpec, parse

SCENARIOS, PERSONAS = 21, 10  # as in seeds/sim_scenarios.json and sim_personas.json
PROBES, FACTS, RUNS = 4, 2, 9  # per unit: probes, planted facts per probe, runs (3 threads)
SPEC: dict[str, Any] = {
    "name": "simulated", "goal": "maas experiment simulate", "baseline": {},
    "variant": {"retrieval.min_score": 0.1}, "primary_metric": "retrieval_recall",
    "guardrails": [{"metric": "hallucination_rate", "margin": 0.10},
                   {"metric": "latency_p95_ms", "margin": 150},
                   {"metric": "answer_accuracy", "margin": 0.15}],
    "min_sample": 4, "alpha": 0.05, "test": "t",
}  # fmt: skip


def spec(alpha: float = 0.05, test: str = "t") -> ExperimentSpec:
    return parse({**SPEC, "alpha": alpha, "test": test}, "simulate")


def nominal_false_ship(s: ExperimentSpec) -> float:
    """Upper bound of the rule's A/A false-SHIP rate: α / (1 + guardrails)."""
    return s.alpha / (1 + len(s.guardrails))


@dataclass(frozen=True)
class World:
    """Unit-level effects shared by both arms of one experiment (the pairing)."""

    units: list[tuple[int, int]]  # (scenario, persona)
    hit: np.ndarray  # per unit: probability that a planted fact is found
    speed: np.ndarray  # per unit: median latency (ms)


def world(rng: np.random.Generator, n: int) -> World:
    pairs = [(s, p) for p in range(PERSONAS) for s in range(SCENARIOS)]
    random.Random(int(rng.integers(2**31))).shuffle(pairs)
    units = pairs[:n] if n <= len(pairs) else [pairs[i % len(pairs)] for i in range(n)]
    scen_hit, pers_hit = rng.normal(0, 0.12, SCENARIOS), rng.normal(0, 0.05, PERSONAS)
    scen_ms = rng.lognormal(0, 0.3, SCENARIOS)
    hit = np.array([0.6 + scen_hit[s] + pers_hit[p] for s, p in units]).clip(0.05, 0.95)
    speed = np.array([300.0 * scen_ms[s] for s, _ in units])
    return World(units, hit, speed)


_PLANTED = {"a": [10], "b": [11]}
_MEMORY = (Retrieved(True, frozenset({10})), Retrieved(True, frozenset({11})))
_FOUND = {(a, b): tuple(m for m, hit in zip(_MEMORY, (a, b), strict=True) if hit)
          for a in (False, True) for b in (False, True)}  # fmt: skip


def arm(rng: np.random.Generator, w: World, effect: float = 0.0, tag: str = "a") -> ArmData:
    """One arm's probes, judgements and runs for the world's units (random draws in bulk)."""
    data, n = ArmData(), len(w.units)
    hit = (w.hit + effect).clip(0.0, 1.0)
    found = rng.random((n, PROBES, FACTS)) < hit[:, None, None]
    halluc = rng.random((n, PROBES)) < 0.05
    ms = w.speed[:, None] * rng.lognormal(0, 0.25, (n, RUNS))
    for i, (s, p) in enumerate(w.units):
        user = f"{tag}-user-{i}"
        for k in range(PROBES):
            run, a, b = f"{user}-{k}", bool(found[i, k, 0]), bool(found[i, k, 1])
            data.probes.append(Probe(run, user, f"s{s}", f"p{p}", "single_fact", ("a", "b"),
                                     _PLANTED, a and b, _FOUND[(a, b)]))  # fmt: skip
            data.judged[run] = Judged(float(halluc[i, k]), 1.0)
        data.runs += [RunCost(user, f"{user}-t{t % 3}", float(ms[i, t]), 100) for t in range(RUNS)]
    return data


def experiment(rng: np.random.Generator, n: int, effect: float, s: ExperimentSpec) -> Any:
    w = world(rng, n)
    return analyse(Inputs(s, arm(rng, w, tag="b"), arm(rng, w, effect, tag="v")))


def _share(hits: int, runs: int) -> dict[str, float]:
    """The rate and its Monte Carlo standard error (Agresti-Coull: a count of 0 has one too)."""
    rate, smoothed = hits / runs, (hits + 2) / (runs + 4)
    return {"rate": round(rate, 5), "se": round(math.sqrt(smoothed * (1 - smoothed) / runs), 5)}


def _bound(rate: float, runs: int, z: float = 3.0) -> float:
    """A one-sided Monte Carlo tolerance above a nominal rate: z standard errors at `rate`."""
    return rate + z * math.sqrt(max(rate * (1 - rate), 1e-12) / runs)


def aa_violations(result: dict[str, Any]) -> list[str]:
    """What an A/A result breaks (empty: nothing): per size, false SHIP and false ROLLBACK at
    most the nominal rate (α / (1 + guardrails)) and the primary's p-values super-uniform
    (P(p ≤ u) ≤ u), each within 3 Monte Carlo standard errors; at the largest size, the
    p-values are not stuck near 1 either (P(p ≤ 0.5) ≥ 0.5 − 3 SE)."""
    out, nominal = [], result["nominal_false_ship"]
    sizes = sorted(result["units"], key=int)
    for n in sizes:
        r = result["units"][n]
        runs = r["runs"]
        for key in ("false_ship", "false_rollback"):
            if r[key] > _bound(nominal, runs):
                out.append(f"{n} units: {key} {r[key]:.4f} > nominal {nominal:.4f} + 3 SE")
        for u, share in r["p_at_most"].items():
            if share > _bound(float(u), runs):
                out.append(f"{n} units: P(p ≤ {u}) = {share:.4f} > {u} + 3 SE")
    last = result["units"][sizes[-1]]
    if last["p_at_most"]["0.5"] < 0.5 - 3 * math.sqrt(0.25 / last["runs"]):
        out.append(f"{sizes[-1]} units: P(p ≤ 0.5) = {last['p_at_most']['0.5']:.4f}: stuck high")
    return out


def run(units: list[int], runs: int, effect: float, seed: int = 1, alpha: float = 0.05,
        test: str = "t") -> dict[str, Any]:  # fmt: skip
    """{"units": {"8": {false_ship, false_rollback, shipped, runs, …}}, …}: under A/A
    (effect 0) every SHIP is false; with an effect, `shipped` is the power."""
    s, out = spec(alpha, test), {}
    for n in units:
        rng = np.random.default_rng([seed, n])
        verdicts, p_primary = [], []
        for _ in range(runs):
            v = experiment(rng, n, effect, s)
            verdicts.append(v.verdict)
            p_primary.append(v.metrics[s.primary_metric].p_better)
        out[str(n)] = summary(verdicts, p_primary, effect, runs)
    return {
        "units": out,
        "effect": effect,
        "alpha": alpha,
        "test": test,
        "seed": seed,
        "nominal_false_ship": nominal_false_ship(s),
        "guardrails": len(s.guardrails),
    }


def summary(verdicts: list[str], p_primary: list[float | None], effect: float,
            runs: int) -> dict[str, Any]:  # fmt: skip
    ship, rollback = verdicts.count(stats.SHIP), verdicts.count(stats.ROLLBACK)
    shipped, rolled = _share(ship, runs), _share(rollback, runs)
    ps = np.array([1.0 if p is None else p for p in p_primary])
    return {
        "runs": runs,
        "shipped": shipped["rate"], "shipped_se": shipped["se"],
        "false_ship": shipped["rate"] if effect <= 0 else 0.0,
        "false_ship_se": shipped["se"] if effect <= 0 else 0.0,
        "false_rollback": rolled["rate"],
        "false_rollback_se": rolled["se"],
        "invalid": round(verdicts.count(stats.INVALID) / runs, 5),
        "p_at_most": {str(u): round(float((ps <= u).mean()), 5) for u in (0.01, 0.05, 0.1, 0.5)},
    }  # fmt: skip


def table(result: dict[str, Any]) -> str:
    """The printed form: one row per sample size, with Monte Carlo standard errors."""
    effect = result["effect"]
    head = (f"simulated experiments through analyse(): effect {effect:+g} on "
            f"{SPEC['primary_metric']}, α = {result['alpha']}, test {result['test']}, "
            f"{result['guardrails']} guardrails; nominal A/A false SHIP ≤ "
            f"{result['nominal_false_ship']:.4f}")  # fmt: skip
    cols = "units   runs   false SHIP          false ROLLBACK      shipped             invalid"
    lines = [head, cols, "-" * len(cols)]
    for n, r in result["units"].items():
        false_ship = _pm(r["false_ship"], r["false_ship_se"]) if effect <= 0 else "n/a".ljust(17)
        lines.append(
            f"{n:>5} {r['runs']:>6}   {false_ship}   "
            f"{_pm(r['false_rollback'], r['false_rollback_se'])}   "
            f"{_pm(r['shipped'], r['shipped_se'])}   {r['invalid']:.3f}"
        )
    return "\n".join(lines)


def _pm(rate: float, se: float) -> str:
    return f"{rate:.4f} ± {se:.4f}".ljust(17)
