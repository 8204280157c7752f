"""Admin routes of the self-learning extension: emulator runs and sensor statistics."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from maas.api.deps import get_runtime, require_admin
from maas.errors import MaasError, NotFound
from maas.runtime.context import Runtime
from selflearn import sensor
from selflearn.emulator.engine import Config
from selflearn.emulator.plan import THREADS_PER_EPISODE
from selflearn.emulator.runs import EmulatorRuns
from selflearn.emulator.seeds import SeedError
from selflearn.queries import q

router = APIRouter(
    prefix="/v1/selflearn", tags=["selflearn"], dependencies=[Depends(require_admin)]
)
Rt = Annotated[Runtime, Depends(get_runtime)]


class SeedInvalid(MaasError):
    """The shipped scenario or persona file is broken: a deployment problem, not the caller's."""

    status_code = 500
    code = "seed_invalid"


class EmulatorRunIn(BaseModel):
    dialogs: int = Field(default=100, ge=1, le=10_000)
    concurrency: int = Field(default=8, ge=1, le=64)
    seed: int = Field(default=1, ge=0, le=2**31 - 1)
    paraphrase: bool = False  # rewrite turns in each persona's voice with MaaS's LLM


async def emulator_runs(request: Request) -> EmulatorRuns:
    runs: EmulatorRuns = request.app.state.selflearn_emulator
    return runs


Runs = Annotated[EmulatorRuns, Depends(emulator_runs)]


def _view(row: Any, live: bool) -> dict[str, Any]:
    view = dict(row)
    planned = -(-view["dialogs_requested"] // THREADS_PER_EPISODE) * THREADS_PER_EPISODE
    view["dialogs_planned"] = planned
    view["progress"] = round(min(view["dialogs"] / planned, 1.0), 4)
    view["live"] = live  # running in this process (a stop request can reach it)
    encoded: dict[str, Any] = jsonable_encoder(view)
    return encoded


@router.post("/emulator/runs", status_code=202)
async def start_emulator_run(body: EmulatorRunIn, runs: Runs) -> dict[str, Any]:
    """Start a User Emulator run in the background (dialogs rounded up to whole episodes of
    three threads); follow it with GET …/runs/{id}."""
    try:
        config = Config(body.seed, body.dialogs, body.concurrency, paraphrase=body.paraphrase)
        row = await runs.start(config)
    except SeedError as exc:
        raise SeedInvalid(str(exc)) from exc
    return await get_emulator_run(row["id"], runs)


@router.get("/emulator/runs/{run_id}")
async def get_emulator_run(run_id: uuid.UUID, runs: Runs) -> dict[str, Any]:
    """Progress (dialogs, turns, runs, failures so far), status and, once ended, the summary."""
    row = await runs.pool().fetchrow(q("emulator_get_run"), run_id)
    if row is None:
        raise NotFound(f"emulator run {run_id} not found")
    return _view(row, run_id in runs.running)


@router.post("/emulator/runs/{run_id}/stop")
async def stop_emulator_run(run_id: uuid.UUID, runs: Runs) -> dict[str, Any]:
    """Ask a running emulator run to stop: each synthetic user ends at its next turn."""
    view = await get_emulator_run(run_id, runs)
    view["stop_requested"] = runs.stop(run_id)
    return view


@router.get("/sensor/stats")
async def sensor_stats(rt: Rt) -> dict[str, Any]:
    """Finished runs MaaS holds, rows the sensor recorded, and how far behind it is (seconds)."""
    async with rt.pool.acquire() as conn:
        return await sensor.stats(conn)
