"""Deep cycle over replayed questions: an Optuna search over every lever, then a confirmation on
fresh seeds before anything may ship.

Search: a world of a fresh seed (plus the cycle's corpus, the `search` half of each
conversation's questions) is stored once. The first trial asks both arms; later trials ask only
the variant, since the same questions over the same stored memories with the same baseline
parameters give the same baseline answers. The first trials are screening moves, one lever each
from the parameters in force to a seeded point of its guard range (toward the end a hint for the
goal's metric points at, the hinted levers first); then Optuna's TPE (multivariate) proposes
values for every lever at once, over their whole guard ranges. A trial's objective is the goal
metric's delta in its good direction; one that breaks a goal constraint, or (a budget-recall
goal) loses beyond the margin at the other budget, is pruned. Many looks
at one set of questions overfit it, so the best trial is
then confirmed by a full experiment (both arms, interleaved user by user) on a world of another
fresh seed (new users, new questions) and the corpus's other half: only that verdict decides.
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import uuid
from typing import Any

import optuna

from selflearn.manager import goals, policy, teaching
from selflearn.manager.cycle import Cycle, CycleHost, decide_once
from selflearn.manager.deep import best_trial, objective, open_study

SCREEN_SHARE = 0.6  # of the trials, at most one per lever


def fresh_seed() -> int:
    return secrets.randbelow(2**31 - 1)


def plan(m: CycleHost, cycle: Cycle, seed: int, questions: str) -> dict[str, Any]:
    """The replay section of the cycle's experiments: a world of this seed (the CycleHost's size;
    none when its users are 0) and the cycle's corpus, this half of the questions."""
    cfg = m.settings
    out: dict[str, Any] = {
        "corpus": list(cycle.config.get("corpus") or []),
        "questions": questions,
        "budget": cfg.replay_budget,
        "concurrency": cfg.concurrency,
        "abstain_floor": cfg.abstain_floor,
    }
    if cycle.goal is not None and teaching.other_budget(cycle.goal, cfg):
        out["other_budget"] = teaching.other_budget(cycle.goal, cfg)
    users = int(cycle.config.get("world_users", cfg.world_users))
    if users:
        out["world"] = {
            "seed": seed,
            "users": users,
            "sessions": cfg.world_sessions,
            "turns": cfg.world_turns,
        }
    if questions == "search" and cfg.search_questions:
        out["max_questions"] = cfg.search_questions
    return out


def _point(lever: policy.Lever, current: float, rng: random.Random) -> Any:
    """A seeded point of the lever's range: between the current value and the end a hint points
    at, anywhere in the range without a hint."""
    if lever.boolean:
        return not bool(current)
    low, high = lever.low, lever.high
    if lever.way:
        current = min(max(current, low), high)
        low, high = (current, high) if lever.way > 0 else (low, current)
    return policy.cast(lever.param, rng.uniform(low, high))


def screens(space: tuple[policy.Lever, ...], base: dict[str, Any], seed: int, n: int) -> list[Any]:
    """One lever moved at a time, to a seeded point of its range (never its current value)."""
    rng, out = random.Random(f"{seed}:screen"), []
    for lever in space[:n]:
        value = _point(lever, float(base[lever.param]), rng)
        if value == base[lever.param]:
            value = policy.steps(lever, float(base[lever.param]))[-1]
        out.append({**{lv.param: base[lv.param] for lv in space}, lever.param: value})
    return out


def ask(study: optuna.Study, space: tuple[policy.Lever, ...]) -> tuple[Any, dict[str, Any]]:
    trial = study.ask()
    params: dict[str, Any] = {}
    for lever in space:
        name, low, high = lever.param, lever.low, lever.high
        if lever.boolean:
            params[name] = trial.suggest_categorical(name, [False, True])
        elif isinstance(policy.cast(name, low), int):
            params[name] = trial.suggest_int(name, int(low), int(high))
        else:
            params[name] = round(trial.suggest_float(name, low, high), 4)
    return trial, params


def changes(params: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v != base[k]}


async def run(m: CycleHost, cycle: Cycle) -> tuple[str, dict[str, Any]]:
    assert cycle.goal is not None
    goal = cycle.goal
    seeds = cycle.state.setdefault(
        "seeds", {"search": int(cycle.config.get("seed") or fresh_seed()), "confirm": fresh_seed()}
    )
    space = policy.levers(goal, reingest=bool(cycle.config.get("reingest")), replay=True)
    cycle.phase = "opening study"
    cycle.state["base"], base = await teaching.params_in_force(m.host)
    name = f"cycle-{cycle.id}"
    study = await asyncio.to_thread(open_study, m.host.dsn, name, seeds["search"], True)
    n = int(cycle.config.get("trials", m.settings.deep_trials))
    for params in screens(
        space, base, seeds["search"], min(len(space), math.ceil(n * SCREEN_SHARE))
    ):
        await asyncio.to_thread(study.enqueue_trial, params)
    search = plan(m, cycle, seeds["search"], "search")
    trials: list[dict[str, Any]] = []
    baseline_run: uuid.UUID | None = None
    for i in range(n):
        cycle.check()
        done, baseline_run = await _trial(m, cycle, study, space, base, search, baseline_run, i, n)
        trials.append(done)
        cycle.state["trials_done"] = len(trials)
    result: dict[str, Any] = {
        "study": name,
        "seeds": seeds,
        "search": search,
        "space": {lv.param: [lv.low, lv.high] for lv in space},
        "inert": dict(policy.INERT),
        "trials": trials,
    }
    best = best_trial(trials, need_params=True)
    if best is None or best["value"] <= 0:
        return "no improvement found", result
    return await _confirm(m, cycle, best, seeds, result)


async def _trial(
    m: CycleHost,
    cycle: Cycle,
    study: optuna.Study,
    space: tuple[policy.Lever, ...],
    base: dict[str, Any],
    search: dict[str, Any],
    baseline_run: uuid.UUID | None,
    i: int,
    n: int,
) -> tuple[dict[str, Any], uuid.UUID | None]:
    trial, params = await asyncio.to_thread(ask, study, space)
    cycle.state["trial"] = trial.number
    variant = changes(params, base)
    out: dict[str, Any] = {
        "number": trial.number,
        "params": variant,
        "value": None,
        "violated": [],
        "verdict": None,
        "experiment_id": None,
    }
    if not variant:  # the parameters in force again: nothing to measure
        await asyncio.to_thread(study.tell, trial, 0.0)
        return out | {"value": 0.0}, baseline_run
    size = teaching.Size(m.settings.trial_dialogs, trial.number, m.settings.concurrency)
    span = cycle.span(0.75 * i / n, 0.75 * (i + 1) / n, f"trial {i + 1} of {n}")
    try:
        exp_id = await m.experiment(cycle, variant, size, "trial", span, search, baseline_run)
    except BaseException:
        await asyncio.to_thread(study.tell, trial, state=optuna.trial.TrialState.FAIL)
        raise
    verdict = await teaching.verdict(m.pool(), exp_id) or {"metrics": {}, "verdict": None}
    replay = (verdict.get("checks") or {}).get("replay") or {}
    if baseline_run is None and replay.get("emulator_run"):
        baseline_run = uuid.UUID(replay["emulator_run"])
        base_label = (await teaching.arm_versions(m.pool(), exp_id))["baseline"]["label"]
        await m.measure_goal(cycle, verdict["metrics"], "baseline", base_label, True)
    value, broken = (
        objective(cycle.goal or {}, verdict),
        goals.violated(cycle.goal, verdict["metrics"]),
    )
    broken += teaching.guard_breaches(cycle.goal or {}, m.settings, verdict["metrics"] or {})
    state = optuna.trial.TrialState.PRUNED if value is None or broken else None
    if state is None:
        await asyncio.to_thread(study.tell, trial, value)
    else:
        await asyncio.to_thread(study.tell, trial, state=state)
    primary = (verdict["metrics"] or {}).get((cycle.goal or {}).get("metric", ""), {})
    return out | {
        "value": value,
        "violated": broken,
        "verdict": verdict["verdict"],
        "experiment_id": str(exp_id),
        "baseline": primary.get("baseline"),
        "variant": primary.get("variant"),
    }, baseline_run


async def _confirm(
    m: CycleHost, cycle: Cycle, best: dict[str, Any], seeds: dict[str, int], result: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    confirm = plan(m, cycle, seeds["confirm"], "confirm")
    size = teaching.Size(m.settings.deep_confirm_dialogs, seeds["confirm"], m.settings.concurrency)
    span = cycle.span(0.75, 0.97, "confirming on fresh seeds")
    exp_id = await m.experiment(cycle, best["params"], size, "confirm", span, confirm)
    why = "a deep search's confirmed best changes several parameters: a person decides"
    needs = m.settings.deep_needs_approval
    outcome, decided = await decide_once(m, cycle, exp_id, why if needs else None)
    return outcome, {**result, **decided, "best": best, "confirm": confirm}
