"""Deep cycle: an Optuna search over several parameters toward a goal.

The study lives in our Postgres (Optuna's RDB storage, schema selflearn_optuna, through
SQLAlchemy + psycopg; Optuna creates its own tables there). Each trial is a paired experiment
(baseline = parameters in force vs the trial's variant, same seed for every trial, so trials
compare like with like); its objective is the primary metric's improvement (delta in the
metric's good direction); a variant that breaks a goal constraint is pruned. The best trial is
then confirmed by a macro experiment on scenarios the search never saw (another seed whose
episodes share no scenario with the trials'), and only a confirmed SHIP is proposed.
Optuna is synchronous: its calls run in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from typing import Any

import optuna
from sqlalchemy.pool import NullPool

from maas.params import SPEC_BY_NAME
from selflearn.emulator.plan import plan
from selflearn.emulator.seeds import load_personas, load_scenarios
from selflearn.manager import goals, policy, teaching
from selflearn.manager.cycle import Cycle, CycleHost, decide_once
from selflearn.teacher.metrics import METRICS

log = logging.getLogger(__name__)
SCHEMA = "selflearn_optuna"
MAX_PARAMS = 3


def storage_url(dsn: str) -> str:
    """asyncpg's DSN as an SQLAlchemy URL for psycopg 3 (a unix-socket host= query survives)."""
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    raise ValueError("the database URL must start with postgresql://")


def open_study(dsn: str, name: str, seed: int, multivariate: bool = False) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(
        storage_url(dsn),
        engine_kwargs={
            "poolclass": NullPool,  # no connection outlives a call (databases can be dropped)
            "connect_args": {"options": f"-c search_path={SCHEMA}"},
        },
    )
    if multivariate:  # a replay search: enqueued screening trials first, then TPE on them
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=1, multivariate=True)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=4)
    return optuna.create_study(
        storage=storage, study_name=name, direction="maximize", sampler=sampler,
        load_if_exists=True,
    )  # fmt: skip


def space_of(goal: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {lv.param: (lv.low, lv.high) for lv in policy.levers(goal)[:MAX_PARAMS]}


def ask(study: optuna.Study, space: dict[str, tuple[float, float]]) -> Any:
    trial = study.ask()
    params: dict[str, Any] = {}
    for name, (low, high) in space.items():
        default = SPEC_BY_NAME[name].default
        if isinstance(default, int) and not isinstance(default, bool):
            params[name] = trial.suggest_int(name, int(low), int(high))
        else:
            params[name] = round(trial.suggest_float(name, float(low), float(high)), 4)
    return trial, params


def scenarios_of(seed: int, dialogs: int) -> set[str]:
    return {e.scenario.id for e in plan(seed, dialogs, load_scenarios(), load_personas())}


def holdout_seed(seen: set[str], dialogs: int, start: int) -> int:
    """A seed whose episodes use none of the scenarios `seen` (the search's)."""
    rng = random.Random(start)
    for _ in range(2000):
        seed = rng.randrange(1_000, 2**31 - 1)
        if not scenarios_of(seed, dialogs) & seen:
            return seed
    raise RuntimeError("no seed keeps the confirmation away from the searched scenarios")


def objective(goal: dict[str, Any], verdict: dict[str, Any]) -> float | None:
    primary = (verdict["metrics"] or {}).get(goal["metric"]) or {}
    delta = primary.get("delta")
    return None if delta is None else float(delta) * METRICS[goal["metric"]].direction


def best_trial(trials: list[dict[str, Any]], need_params: bool = False) -> dict[str, Any] | None:
    """The trial to confirm: the best objective among trials that broke no constraint, taking
    first those whose own verdict was SHIP — the search's test already showed every guardrail
    (budget recall at the other budget, say) within its margin, where a HOLD best by a hair
    had not, and its confirmation would likely hold too."""
    ok = [t for t in trials if t["value"] is not None and not t["violated"]]
    ok = [t for t in ok if t["params"]] if need_params else ok
    shipped = [t for t in ok if t.get("verdict") == "SHIP"]
    return max(shipped or ok, key=lambda t: t["value"], default=None)


async def _trial(
    m: CycleHost, cycle: Cycle, study: optuna.Study, space: Any, i: int
) -> dict[str, Any]:
    cfg, n = m.settings, int(cycle.config.get("trials", m.settings.deep_trials))
    trial, params = await asyncio.to_thread(ask, study, space)
    cycle.state["trial"] = trial.number
    size = teaching.Size(int(cycle.config.get("trial_dialogs", cfg.trial_dialogs)),
                         int(cycle.config.get("seed", 1)), cfg.concurrency)  # fmt: skip
    span = cycle.span(0.8 * i / n, 0.8 * (i + 1) / n, f"trial {i + 1} of {n}")
    try:
        exp_id = await m.experiment(cycle, params, size, "trial", span)
    except BaseException:
        await asyncio.to_thread(study.tell, trial, state=optuna.trial.TrialState.FAIL)
        raise
    verdict = await teaching.verdict(m.pool(), exp_id) or {"metrics": {}, "verdict": None}
    if i == 0:  # every trial's baseline is the parameters in force: measure the goal once
        base = (await teaching.arm_versions(m.pool(), exp_id))["baseline"]
        await m.measure_goal(cycle, verdict["metrics"], "baseline", base["label"], True)
    value, broken = (
        objective(cycle.goal or {}, verdict),
        goals.violated(cycle.goal, verdict["metrics"]),
    )
    if value is None or broken:
        await asyncio.to_thread(study.tell, trial, state=optuna.trial.TrialState.PRUNED)
    else:
        await asyncio.to_thread(study.tell, trial, value)
    return {"number": trial.number, "params": params, "value": value, "violated": broken,
            "verdict": verdict["verdict"], "experiment_id": str(exp_id)}  # fmt: skip


async def run(m: CycleHost, cycle: Cycle) -> tuple[str, dict[str, Any]]:
    assert cycle.goal is not None
    space = space_of(cycle.goal)
    if not space:
        return "nothing to search", {"note": f"no levers known for {cycle.goal['metric']}"}
    name = f"cycle-{cycle.id}"
    seed = int(cycle.config.get("seed", 1))
    cycle.phase = "opening study"
    cycle.state["base"], _ = await teaching.params_in_force(m.host)
    study = await asyncio.to_thread(open_study, m.host.dsn, name, seed)
    cycle.state["study"] = name
    trials: list[dict[str, Any]] = []
    for i in range(int(cycle.config.get("trials", m.settings.deep_trials))):
        cycle.check()
        trials.append(await _trial(m, cycle, study, space, i))
        cycle.state["trials_done"] = len(trials)
    result: dict[str, Any] = {"study": name, "space": space, "trials": trials}
    now, _ = await teaching.params_in_force(m.host)
    if now != cycle.state["base"]:  # a person or the auto-rollback monitor changed them
        result["warnings"] = [
            f"the parameters in force changed during the search ({cycle.state['base']} → {now}): "
            "later trials had another baseline; the confirmation compares with the new one"
        ]
    best = best_trial(trials)
    if best is None or best["value"] <= 0:
        return "no improvement found", result
    return await _confirm(m, cycle, best, trials, result)


async def _confirm(
    m: CycleHost, cycle: Cycle, best: dict[str, Any], trials: list[Any], result: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    cfg = m.settings
    trial_dialogs = int(cycle.config.get("trial_dialogs", cfg.trial_dialogs))
    seen = scenarios_of(int(cycle.config.get("seed", 1)), trial_dialogs)
    dialogs = int(cycle.config.get("confirm_dialogs", cfg.deep_confirm_dialogs))
    seed = await asyncio.to_thread(holdout_seed, seen, dialogs, uuid.UUID(str(cycle.id)).int % 997)
    size = teaching.Size(dialogs, seed, cfg.concurrency)
    span = cycle.span(0.8, 0.97, "confirming on unseen scenarios")
    exp_id = await m.experiment(cycle, best["params"], size, "confirm", span)
    why = "a deep search's confirmed best changes several parameters: a person decides"
    outcome, decided = await decide_once(m, cycle, exp_id, why if cfg.deep_needs_approval else None)
    unseen = sorted(scenarios_of(seed, dialogs))
    return outcome, {**result, **decided, "best": best, "confirm_seed": seed,
                     "searched_scenarios": sorted(seen), "confirm_scenarios": unseen}  # fmt: skip
