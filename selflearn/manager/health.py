"""A micro cycle's measurement: the Teacher's metrics of one emulator batch on the parameters in
force (no second arm), each with a bootstrap CI over scenarios, from sensor tables and emulator
expectations only — the same functions an experiment's arms go through."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from selflearn.queries import q
from selflearn.teacher import judge as judging
from selflearn.teacher import stats
from selflearn.teacher.experiment import Experiments, arm_data
from selflearn.teacher.metrics import METRICS, ArmData, Judged, unit_values
from selflearn.teacher.spec import ExperimentSpec


@dataclass(frozen=True)
class _AutoJudge:
    judge: str = "auto"  # what Experiments.judge reads of a spec


async def wait_for_sensor(pool: Any, emulator_run: uuid.UUID, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while await pool.fetchval(q("teacher_unrecorded"), emulator_run):
        if time.monotonic() > deadline:
            raise TimeoutError("the sensor did not record every run of the batch in time")
        await asyncio.sleep(0.2)


async def _judged(exps: Experiments, emulator_run: uuid.UUID) -> dict[str, Judged]:
    judge = exps.judge(cast(ExperimentSpec, _AutoJudge()))
    rows = await exps.pool().fetch(q("teacher_judge_inputs"), emulator_run)
    inputs = [judging.JudgeInput(
        str(r["run_id"]), str(r["user_id"]), r["query"], r["answer"], r["context_text"],
        tuple((m["memory_id"], m["text"]) for m in r["used_memories"]),
    ) for r in rows]  # fmt: skip
    scores = await judging.judge_all(judge, inputs, 1)
    return {run: Judged(h, u) for run, (h, u) in judging.per_run(scores).items()}


def summarise(per_unit: dict[Any, float], level: float, resamples: int = 0) -> dict[str, Any]:
    """Mean over units (scenario × persona) with its cluster-robust t interval over scenarios;
    no interval from fewer than stats.MIN_INTERVAL_CLUSTERS scenarios (`resamples`: unused,
    kept for callers)."""
    units = sorted(per_unit)
    values = np.array([per_unit[u] for u in units], dtype=float)
    codes: dict[str, int] = {}
    clusters = np.array([codes.setdefault(u[0], len(codes)) for u in units], dtype=int)
    grouped = stats.grouped(values, clusters)
    ci = stats.mean_interval(grouped, level)
    return {
        "value": round(float(values.mean()), 6),
        "ci": None if ci is None else [round(ci[0], 6), round(ci[1], 6)],
        "ci_level": level if ci is not None else None,
        "clusters": grouped.k,
        "n": len(values),
    }


def on_version(data: ArmData, off: set[str]) -> ArmData:
    """The synthetic users whose every run had the version measured: while a version is
    monitored, the threads in the auto-rollback monitor's control run the last good one."""
    return ArmData([p for p in data.probes if p.user_id not in off],
                   [r for r in data.runs if r.user_id not in off], data.judged)  # fmt: skip


async def measure(
    exps: Experiments,
    emulator_run: uuid.UUID,
    alpha: float,
    resamples: int = 0,
    label: str | None = None,
) -> dict[str, dict[str, Any]]:
    """{metric: {value, ci, n}} for every metric the batch defines; with `label`, over the
    synthetic users whose runs all had that parameter version."""
    judged = await _judged(exps, emulator_run)
    async with exps.pool().acquire() as conn:
        data = await arm_data(conn, emulator_run, judged)
        if label is not None:
            rows = await conn.fetch(q("teacher_users_off_version"), emulator_run, label)
            data = on_version(data, {str(r["user_id"]) for r in rows})
    values = unit_values(data)
    return {
        name: summarise(values[name], 1 - alpha, resamples) for name in METRICS if values.get(name)
    }
