"""Admin routes of the self-learning extension: emulator runs and sensor statistics."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from maas.api.deps import get_runtime, require_admin
from maas.errors import MaasError, NotFound
from maas.runtime.context import Runtime
from selflearn import sensor
from selflearn.emulator import corpus
from selflearn.emulator.engine import Config
from selflearn.emulator.plan import THREADS_PER_EPISODE
from selflearn.emulator.runs import EmulatorRuns, ReplayRequest
from selflearn.emulator.seeds import SeedError
from selflearn.emulator.world import WorldSpec
from selflearn.queries import q

router = APIRouter(
    prefix="/v1/selflearn", tags=["selflearn"], dependencies=[Depends(require_admin)]
)
Rt = Annotated[Runtime, Depends(get_runtime)]


class SeedInvalid(MaasError):
    """The shipped scenario or persona file is broken: a deployment problem, not the caller's."""

    status_code = 500
    code = "seed_invalid"


class BadInput(MaasError):
    status_code = 422
    code = "invalid_request"


class WorldIn(BaseModel):
    """A generated world's size (selflearn/emulator/world); the seed is the run's."""

    users: int = Field(default=8, ge=1, le=500)
    sessions: int = Field(default=20, ge=1, le=200)
    turns: int = Field(default=400, ge=0, le=20_000)


class EmulatorRunIn(BaseModel):
    dialogs: int = Field(default=100, ge=1, le=10_000)
    concurrency: int = Field(default=8, ge=1, le=64)
    seed: int = Field(default=1, ge=0, le=2**31 - 1)
    paraphrase: bool = False  # rewrite turns in each persona's voice with MaaS's LLM
    # Replay instead of scripted dialogs: a world of this size, uploaded conversations, or both.
    world: WorldIn | None = None
    corpus: list[Annotated[str, Field(pattern="^[0-9a-f]{64}$")]] = Field(
        default_factory=list, max_length=1000
    )
    budget: int = Field(default=2000, ge=50, le=32_000)  # max_tokens of each /v1/context call
    abstain_floor: float = Field(default=1.0, ge=0, le=10)

    def replay(self) -> ReplayRequest | None:
        if self.world is None and not self.corpus:
            return None
        world = None if self.world is None else WorldSpec(self.seed, **self.world.model_dump())
        return ReplayRequest(world, tuple(dict.fromkeys(self.corpus)), self.budget,
                             self.concurrency, self.abstain_floor)  # fmt: skip


async def emulator_runs(request: Request) -> EmulatorRuns:
    runs: EmulatorRuns = request.app.state.selflearn_emulator
    return runs


Runs = Annotated[EmulatorRuns, Depends(emulator_runs)]


def _view(row: Any, live: bool) -> dict[str, Any]:
    view = dict(row)
    planned = view["dialogs_requested"]  # replay: users
    if view.get("kind", "dialogs") == "dialogs":
        planned = -(-planned // THREADS_PER_EPISODE) * THREADS_PER_EPISODE
    view["dialogs_planned"] = planned
    view["progress"] = round(min(view["dialogs"] / planned, 1.0), 4)
    view["live"] = live  # running in this process (a stop request can reach it)
    encoded: dict[str, Any] = jsonable_encoder(view)
    return encoded


@router.post("/emulator/runs", status_code=202)
async def start_emulator_run(body: EmulatorRunIn, runs: Runs) -> dict[str, Any]:
    """Start a User Emulator run in the background: scripted dialogs (rounded up to whole
    episodes of three threads), or, with `world` and/or `corpus`, a replay (histories stored,
    every question asked through /v1/context and scored from its evidence ids); follow it with
    GET …/runs/{id}."""
    try:
        replay = body.replay()
        if replay is not None:
            row = await runs.start_replay(replay)
        else:
            config = Config(body.seed, body.dialogs, body.concurrency, paraphrase=body.paraphrase)
            row = await runs.start(config)
    except SeedError as exc:
        raise SeedInvalid(str(exc)) from exc
    except ValueError as exc:  # a world size out of range
        raise BadInput(str(exc)) from exc
    return await get_emulator_run(row["id"], runs)


def conversation_hash(raw: dict[str, Any]) -> str:
    """sha256 of the canonical JSON: the same conversation, the same hash."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@router.post("/conversations", status_code=201)
async def upload_conversation(body: dict[str, Any], runs: Runs) -> dict[str, Any]:
    """One conversation in LoCoMo's format (what `maas bench locomo` reads), kept for replays and
    cycles by the hash of its content (uploading it again changes nothing)."""
    try:
        conv = corpus.parse(body)
    except corpus.CorpusError as exc:
        raise BadInput(str(exc)) from exc
    digest = conversation_hash(body)
    stored = await runs.pool().fetchval(
        q("conversation_upload"), digest, conv.conversation_id, body, conv.turns,
        len(conv.questions),
    )  # fmt: skip
    return {"hash": digest, "conversation_id": conv.conversation_id, "turns": conv.turns,
            "questions": len(conv.questions), "new": stored is not None}  # fmt: skip


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
