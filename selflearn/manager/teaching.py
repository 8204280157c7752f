"""The Manager's adapter to the Teacher and the Tuner (#7): build an experiment spec for a goal,
run it through `Experiments` (paired arms through the User Emulator) while reporting progress,
read its verdict, and activate or roll back parameter versions. Nothing here decides: the
verdict is the Teacher's, stored by it in selflearn.verdicts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from maas.host import ExtensionHost
from selflearn import tuner
from selflearn.emulator.plan import THREADS_PER_EPISODE, plan
from selflearn.emulator.seeds import load_personas, load_scenarios
from selflearn.manager.goals import constraints
from selflearn.manager.settings import ManagerSettings
from selflearn.queries import q
from selflearn.teacher import stats
from selflearn.teacher.experiment import Experiments
from selflearn.teacher.metrics import METRICS, REPLAY_METRICS
from selflearn.teacher.spec import ExperimentSpec, parse

# What a replay (questions through /v1/context, no answer) measures.
REPLAY_DEFINED = frozenset({"budget_recall", "retrieval_recall", "found_anything_rate",
                            "abstention_correctness", "latency_p50_ms", "latency_p95_ms",
                            *REPLAY_METRICS})  # fmt: skip
assert set(METRICS) >= REPLAY_DEFINED
# Goals on these learn from replays (the world, a corpus): the scripted dialogs plant a few facts
# per user and saturate them (#16). Other goals replay when the cycle is fed a corpus.
REPLAY_FIRST = frozenset({"budget_recall", "retrieval_recall", *REPLAY_METRICS})


def replays(goal: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether a cycle on this goal measures replayed questions rather than scripted dialogs."""
    metric = goal["metric"]
    return metric in REPLAY_FIRST or (bool(config.get("corpus")) and metric in REPLAY_DEFINED)


Tick = Callable[[float], Awaitable[bool]]  # progress 0..1 of this step → stop asked?


@dataclass(frozen=True)
class Size:
    dialogs: int
    seed: int
    concurrency: int = 4


# Budget recall at the replay's budget and at its other budget guard each other: a goal on one
# must not ship a change that loses beyond `other_budget_margin` on the other (#16: tuned at
# 2,000 tokens, a version fell at 500).
OTHER_BUDGET = {"budget_recall": "budget_recall_other", "budget_recall_other": "budget_recall"}


def other_budget(goal: dict[str, Any], cfg: ManagerSettings) -> int:
    """The second budget a replay of this goal asks at (0: none)."""
    wanted = goal.get("metric") in OTHER_BUDGET and cfg.other_budget != cfg.replay_budget
    return cfg.other_budget if wanted else 0


def guardrails_of(
    goal: dict[str, Any], cfg: ManagerSettings, replay: bool = False
) -> dict[str, float]:
    """Each constraint on another metric than the goal's: a guardrail, margin a share of its
    bound. In a replay, a constraint on a metric a replay does not define (an answer's) is left
    to the dialog cycles, and budget recall at the other budget guards a budget-recall goal."""
    guards: dict[str, float] = {}
    if replay and other_budget(goal, cfg):
        guards[OTHER_BUDGET[goal["metric"]]] = cfg.other_budget_margin
    for c in constraints(goal):
        if c.metric != goal["metric"] and (not replay or c.metric in REPLAY_DEFINED):
            guards.setdefault(c.metric, round(abs(c.value) * cfg.constraint_margin, 6))
    return guards


def guard_breaches(
    goal: dict[str, Any], cfg: ManagerSettings, metrics: dict[str, Any]
) -> list[str]:
    """A search trial whose variant loses more than the margin at the other budget (its point
    estimate: a trial is a look, not a test) is not worth confirming."""
    name = OTHER_BUDGET.get(goal.get("metric", ""), "")
    delta = (metrics.get(name) or {}).get("delta")
    if not other_budget(goal, cfg) or delta is None or delta >= -cfg.other_budget_margin:
        return []
    return [f"{name} {delta:+.4g} beyond its margin −{cfg.other_budget_margin:g}"]


def clusters_by_size(seed: int, most: int) -> list[int]:
    """Distinct scenarios (the clusters a test runs on) of the emulator's plan for 3, 6, …
    `most` dialogs (the plan is prefix-stable: one plan serves every size)."""
    episodes = plan(seed, most, load_scenarios(), load_personas())
    seen: set[str] = set()
    out = []
    for e in episodes:
        seen.add(e.scenario.id)
        out.append(len(seen))
    return out


def planned_dialogs(
    goal: dict[str, Any], cfg: ManagerSettings, alpha: float, seed: int
) -> tuple[int, dict[str, Any]]:
    """The fewest dialogs per arm (at least macro_dialogs, at most max_dialogs) whose clusters
    give the goal's primary test the target power to find the metric's minimum detectable
    effect at the level Holm leaves it at worst; the cap when none does (and the plan says so)."""
    metric = METRICS[goal["metric"]]
    level = alpha / (1 + len(guardrails_of(goal, cfg)))
    clusters = clusters_by_size(seed, cfg.max_dialogs)
    dialogs, power = cfg.max_dialogs, 0.0
    for units, k in enumerate(clusters, start=1):
        dialogs, power = units * THREADS_PER_EPISODE, stats.power(k, metric.mde, metric.sd, level)
        if dialogs >= cfg.macro_dialogs and power >= cfg.power:
            break
    plan_ = {"mde": metric.mde, "sd": metric.sd, "target": cfg.power, "alpha_primary": level,
             "dialogs": dialogs, "clusters": clusters[dialogs // THREADS_PER_EPISODE - 1],
             "power": round(power, 4), "reached": power >= cfg.power}  # fmt: skip
    return dialogs, plan_


def spec_for(
    goal: dict[str, Any],
    name: str,
    variant: dict[str, Any],
    size: Size,
    cfg: ManagerSettings,
    alpha: float | None = None,
    replay: dict[str, Any] | None = None,
) -> ExperimentSpec:
    """Baseline = the parameters in force, variant = them with `variant` overlaid; the goal's
    metric is primary, each constraint on another metric a guardrail (margin: a share of its
    bound); α: the goal's next share (spending), else the setting; the power plan: the
    metric's minimum detectable effect. With `replay` (the spec's replay section) the arms
    replay a world / corpus instead of playing dialogs."""
    guards = guardrails_of(goal, cfg, replay is not None)
    metric = METRICS[goal["metric"]]
    raw = {
        "name": name,
        "goal": f"goal {goal['id']}: {goal['name']}",
        "description": f"Manager: {goal['metric']} toward {goal['target']:g}",
        "baseline": {},
        "variant": variant,
        "primary_metric": goal["metric"],
        "guardrails": [{"metric": m, "margin": g} for m, g in sorted(guards.items())],
        "min_sample": cfg.min_sample,
        "alpha": round(alpha if alpha is not None else cfg.alpha, 8),
        "test": "t",
        "plan": {"mde": metric.mde, "sd": metric.sd, "power": cfg.power},
        "emulator": {"dialogs": size.dialogs, "concurrency": size.concurrency, "seed": size.seed},
        "judge": {"kind": "auto"},
        "bootstrap_resamples": cfg.bootstrap_resamples,
    }
    if replay is not None:
        raw["replay"] = replay
    return parse(raw, name)


async def _arm_share(pool: Any, exp_id: uuid.UUID) -> float:
    """0..1: both arms played = 0.9 (the judge and analysis take the rest)."""
    row = await pool.fetchrow(q("mgr_experiment_runs"), exp_id)
    if row is None:
        return 0.0
    done = 0.0
    for run in (row["baseline_emulator_run"], row["variant_emulator_run"]):
        if run is not None:
            r = await pool.fetchrow(q("mgr_emulator_progress"), run)
            planned = -(-r["dialogs_requested"] // THREADS_PER_EPISODE) * THREADS_PER_EPISODE
            done += 1.0 if r["status"] != "running" else min(r["dialogs"] / planned, 1.0)
    return 0.45 * done


async def run_experiment(
    exps: Experiments,
    spec: ExperimentSpec,
    who: str,
    tick: Tick,
    started: Callable[[uuid.UUID], Awaitable[None]],
    every: float = 0.5,
    reuse_baseline: uuid.UUID | None = None,
) -> tuple[uuid.UUID, str]:
    """Start the experiment and wait for it, reporting progress; a stop asked through `tick`
    stops it (both arms' parameters are released by the Teacher however it ends)."""
    row = await exps.start(spec, who, reuse_baseline=reuse_baseline)
    exp_id: uuid.UUID = row["id"]
    await started(exp_id)
    entry = exps.running.get(exp_id)
    if entry is not None:
        task = entry[0]
        while not task.done():
            await asyncio.wait({task}, timeout=every)
            if await tick(await _arm_share(exps.pool(), exp_id)):
                exps.stop(exp_id)
        await asyncio.gather(task, return_exceptions=True)
    status = (await exps.pool().fetchrow(q("mgr_experiment_runs"), exp_id))["status"]
    return exp_id, str(status)


async def verdict(pool: Any, exp_id: uuid.UUID) -> dict[str, Any] | None:
    row = await pool.fetchrow(q("mgr_verdict"), exp_id)
    return None if row is None else dict(row)


async def arm_versions(pool: Any, exp_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    """{arm: {version, label, params}} of an experiment's prepared parameter versions."""
    return {r["arm"]: dict(r) for r in await pool.fetch(q("mgr_experiment_versions"), exp_id)}


async def params_in_force(host: ExtensionHost) -> tuple[str, dict[str, Any]]:
    """(label, parameters) in force: the active version's, else MaaS's own (built-in /
    MAAS_PARAMS)."""
    async with host.pool.acquire() as conn:
        row = await tuner.active(conn)
    if row is not None:
        return str(row["label"]), dict(tuner.view(row)["params"] or {})
    serving = await host.active_params()
    return serving.version, dict(serving.values)


async def activate(pool: Any, version: int, change: tuner.Change) -> int | None:
    async with pool.acquire() as conn:
        return await tuner.activate_parameter_version(conn, version, change)


async def rollback(pool: Any, change: tuner.Change) -> int | None:
    async with pool.acquire() as conn:
        return await tuner.rollback_parameters(conn, change)
