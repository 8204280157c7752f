"""Admin routes of the Teacher and the Tuner: experiments, verdicts, parameter versions, audit.

Changes made here are made by a person (the admin key holder): actor `person`, `who` as given.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from maas.api.deps import get_runtime, require_admin
from maas.errors import MaasError, NotFound
from maas.runtime.context import Runtime
from selflearn import tuner
from selflearn.queries import q
from selflearn.teacher.experiment import Experiments
from selflearn.teacher.spec import SpecError, parse

router = APIRouter(
    prefix="/v1/selflearn", tags=["selflearn"], dependencies=[Depends(require_admin)]
)
Rt = Annotated[Runtime, Depends(get_runtime)]


class InvalidSpec(MaasError):
    status_code = 422
    code = "invalid_spec"


async def experiments(request: Request) -> Experiments:
    found: Experiments = request.app.state.selflearn_experiments
    return found


Exps = Annotated[Experiments, Depends(experiments)]


class ExperimentIn(BaseModel):
    spec: dict[str, Any] = Field(description="the experiment file's content (experiments/*.yaml)")
    mode: Literal["paired", "split"] = Field(
        default="paired",
        description="paired: both arms through the User Emulator; split: live traffic split by "
        "thread until stopped",
    )
    who: str = Field(default="admin api", min_length=1, max_length=200)


class ChangeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    who: str = Field(default="admin api", min_length=1, max_length=200)


class ActivateIn(ChangeIn):
    version: int = Field(ge=1)


class VersionIn(ChangeIn):
    params: dict[str, Any] = Field(description="overrides of the parameters in force")
    parent: int | None = Field(default=None, ge=1)


def _json(value: Any) -> Any:
    return jsonable_encoder(value)


def _change(body: ChangeIn) -> tuner.Change:
    return tuner.Change("person", body.who, body.reason)


@router.post("/experiments", status_code=202)
async def start_experiment(body: ExperimentIn, exps: Exps) -> Any:
    """Validate the spec, freeze it (hash), prepare the arms' parameter versions and run both
    arms through the User Emulator in the background; follow it with GET …/experiments/{id}."""
    try:
        spec = parse(body.spec, body.spec.get("name", "spec") if body.spec else "spec")
        row = await exps.start(spec, body.who, body.mode)
    except SpecError as exc:
        raise InvalidSpec(str(exc)) from exc
    return await get_experiment(row["id"], exps)


@router.get("/experiments")
async def list_experiments(
    exps: Exps, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)
) -> Any:
    return _json([dict(r) for r in await exps.pool().fetch(q("teacher_list_experiments"), limit,
                                                           offset)])  # fmt: skip


@router.get("/experiments/{experiment_id}")
async def get_experiment(experiment_id: uuid.UUID, exps: Exps) -> Any:
    """Status, frozen spec and hash, the arms' parameter versions and emulator runs."""
    row = await exps.pool().fetchrow(q("teacher_get_experiment"), experiment_id)
    if row is None:
        raise NotFound(f"experiment {experiment_id} not found")
    view = dict(row)
    view["live"] = experiment_id in exps.running
    return _json(view)


@router.get("/experiments/{experiment_id}/verdict")
async def get_verdict(experiment_id: uuid.UUID, exps: Exps) -> Any:
    """The latest verdict: per metric baseline, variant, delta, CI, p-values; checks; advice."""
    await get_experiment(experiment_id, exps)
    row = await exps.pool().fetchrow(q("teacher_latest_verdict"), experiment_id)
    if row is None:
        raise NotFound(f"experiment {experiment_id} has no verdict yet")
    return _json(dict(row))


@router.post("/experiments/{experiment_id}/stop")
async def stop_experiment(experiment_id: uuid.UUID, exps: Exps, request: Request) -> Any:
    """Paired: ask the running experiment to stop (no verdict). Split: end the split and
    analyse it now (the verdict is stored)."""
    view = await get_experiment(experiment_id, exps)
    if view["mode"] == "split" and view["status"] == "running":
        await exps.end_split(experiment_id)
        _invalidate(request)
        return await get_experiment(experiment_id, exps)
    view["stop_requested"] = exps.stop(experiment_id)
    return view


@router.get("/parameters/active")
async def active_parameters(rt: Rt) -> Any:
    """The active version (null: MaaS uses its own built-in / MAAS_PARAMS parameters) and the
    set a new run without an experiment gets right now."""
    async with rt.pool.acquire() as conn:
        row = await tuner.active(conn)
    serving = await rt.params.active()
    return _json({"active": tuner.view(row) if row else None,
                  "serving": {"version": serving.version, "params": serving.values}})  # fmt: skip


@router.get("/parameters/versions")
async def parameter_versions(
    rt: Rt, limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)
) -> Any:
    async with rt.pool.acquire() as conn:
        return _json(await tuner.versions(conn, limit, offset))


@router.get("/parameters/versions/{version}")
async def parameter_version(version: int, rt: Rt) -> Any:
    async with rt.pool.acquire() as conn:
        return _json(await tuner.version(conn, version))


@router.post("/parameters/versions", status_code=201)
async def store_parameters(body: VersionIn, rt: Rt) -> Any:
    """Store a new, inactive version: the active set (or parent's) overlaid with `params`."""
    async with rt.pool.acquire() as conn:
        base = await tuner.version(conn, body.parent) if body.parent else None
        if base is None:
            row = await tuner.active(conn)
            base = tuner.view(row) if row else {"version": None, "params": {}}
        params = {**base["params"], **body.params}
        number = await tuner.store_version(conn, params, _change(body), base["version"])
        return _json(await tuner.version(conn, number))


@router.get("/parameters/diff")
async def parameter_diff(
    rt: Rt, from_version: int = Query(alias="from", ge=1), to_version: int = Query(alias="to", ge=1)
) -> Any:
    """{parameter: [value in `from`, value in `to`]} for every parameter that differs."""
    async with rt.pool.acquire() as conn:
        a, b = await tuner.version(conn, from_version), await tuner.version(conn, to_version)
    return {"from": from_version, "to": to_version, "diff": tuner.diff(a["params"], b["params"])}


@router.post("/parameters/activate")
async def activate_parameters(body: ActivateIn, rt: Rt, request: Request) -> Any:
    """Make a version the active one (guarded again); new runs get it within one poll."""
    async with rt.pool.acquire() as conn:
        previous = await tuner.activate_parameter_version(conn, body.version, _change(body))
    _invalidate(request)
    return {"active": body.version, "previous": previous}


@router.post("/parameters/rollback")
async def rollback(body: ChangeIn, rt: Rt, request: Request) -> Any:
    """Roll forward to a new version copying the last good one (none: MaaS's own parameters)."""
    async with rt.pool.acquire() as conn:
        new = await tuner.rollback_parameters(conn, _change(body))
    _invalidate(request)
    return {"active": new}


@router.get("/audit")
async def audit_log(
    rt: Rt, experiment_id: uuid.UUID | None = None, limit: int = Query(200, ge=1, le=1000)
) -> Any:
    """Every parameter change, newest first: action, actor, who, why, experiment, diff."""
    async with rt.pool.acquire() as conn:
        return _json(await tuner.audit_log(conn, experiment_id, limit))


def _invalidate(request: Request) -> None:
    source = getattr(request.app.state, "selflearn_params", None)
    if source is not None:
        source.invalidate()
