"""Admin routes of the Manager: goals, cycles, proposals, reports (under /v1/selflearn).

Experiments, verdicts, parameter versions, diffs, activation, rollback and emulator runs are the
Teacher's, the Tuner's and the emulator's routes (selflearn/tuning_api.py, selflearn/api.py);
the dashboard uses those too.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field, field_validator

from maas.api.deps import require_admin
from maas.errors import Conflict, NotFound
from maas.params import validate
from selflearn import tuner
from selflearn.manager import goals, reports
from selflearn.manager.cycles import Manager
from selflearn.queries import q

router = APIRouter(
    prefix="/v1/selflearn", tags=["selflearn manager"], dependencies=[Depends(require_admin)]
)
REPORT_CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


async def manager(request: Request) -> Manager:
    found: Manager = request.app.state.selflearn_manager
    return found


Mgr = Annotated[Manager, Depends(manager)]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]  # an integer key (Postgres integer)


def _json(value: Any) -> Any:
    return jsonable_encoder(value)


# ---- goals -----------------------------------------------------------------------------------


@router.post("/goals", status_code=201)
async def create_goal(body: goals.GoalIn, mgr: Mgr) -> Any:
    """A goal: a Teacher metric, a target (its direction is the metric's), constraints every
    shipped change must keep, and optionally the parameters cycles may search for it."""
    async with mgr.pool().acquire() as conn:
        return _json(await goals.create(conn, body))


@router.get("/goals")
async def list_goals(mgr: Mgr, archived: bool = False) -> Any:
    """Every goal with its current value (the latest measurement on the parameters in force)
    and progress toward the target."""
    async with mgr.pool().acquire() as conn:
        return _json(await goals.list_goals(conn, archived))


@router.get("/goals/{goal_id}")
async def get_goal(goal_id: Id, mgr: Mgr) -> Any:
    async with mgr.pool().acquire() as conn:
        return _json(await goals.get(conn, goal_id))


@router.get("/goals/{goal_id}/tests")
async def goal_tests(goal_id: Id, mgr: Mgr) -> Any:
    """Every test of the goal (its macro cycles' and deep confirmations' experiments with a
    verdict), the α each ran at, what is spent of the goal's α and the next test's share."""
    async with mgr.pool().acquire() as conn:
        await goals.get(conn, goal_id)  # 404 for an unknown goal
    return _json(await mgr.goal_record(goal_id))


@router.patch("/goals/{goal_id}")
async def update_goal(goal_id: Id, body: goals.GoalPatch, mgr: Mgr) -> Any:
    """Change the name, description, target, constraints, search space or status."""
    async with mgr.pool().acquire() as conn:
        return _json(await goals.update(conn, goal_id, body))


@router.delete("/goals/{goal_id}", status_code=204)
async def delete_goal(goal_id: Id, mgr: Mgr) -> Response:
    """Delete a goal and its measurements; its cycles and proposals stay (without the goal)."""
    async with mgr.pool().acquire() as conn:
        await goals.delete(conn, goal_id)
    return Response(status_code=204)


@router.get("/goals/{goal_id}/series")
async def goal_series(goal_id: Id, mgr: Mgr) -> Any:
    """The goal's metric over time and the parameter changes made meanwhile (the plot)."""
    async with mgr.pool().acquire() as conn:
        goal = await goals.get(conn, goal_id)
        points = [dict(r) for r in await conn.fetch(q("mgr_goal_series"), goal_id)]
        changes = [dict(r) for r in await conn.fetch(
            q("mgr_param_changes"), goal["created_at"], _far_future())]  # fmt: skip
    return _json({"goal": goal, "measurements": points, "changes": changes})


def _far_future() -> Any:
    from datetime import UTC, datetime

    return datetime(9999, 1, 1, tzinfo=UTC)


# ---- cycles ----------------------------------------------------------------------------------


class CycleIn(BaseModel):
    kind: Literal["micro", "macro", "deep"]
    goal_id: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="required for macro and deep"
    )
    variant: dict[str, Any] | None = Field(
        default=None, description="macro: the change to test; default: the next lever step"
    )
    dialogs: int | None = Field(default=None, ge=3, le=630, description="per arm / batch")
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    trials: int | None = Field(default=None, ge=1, le=200, description="deep: Optuna trials")
    trial_dialogs: int | None = Field(default=None, ge=3, le=630)
    confirm_dialogs: int | None = Field(default=None, ge=3, le=630)
    # Replay cycles: uploaded conversations (POST /v1/selflearn/conversations) fed beside the
    # generated world, the world's users (0: corpus only), and whether archivist.* levers may
    # move (each such trial imports the histories again).
    corpus: list[Annotated[str, Field(pattern="^[0-9a-f]{64}$")]] | None = Field(
        default=None, max_length=1000
    )
    world_users: int | None = Field(default=None, ge=0, le=500)
    reingest: bool | None = None
    who: str = Field(default="admin api", min_length=1, max_length=200)

    @field_validator("variant")
    @classmethod
    def _guarded(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            validate(v)  # unknown names, wrong types, outside guard ranges: 422
        return v


@router.post("/cycles", status_code=202)
async def start_cycle(body: CycleIn, mgr: Mgr) -> Any:
    """Start a micro, macro or deep cycle in the background (one at a time: 409 otherwise);
    follow it with GET …/cycles/{id}: phase, progress, experiments, outcome, report."""
    config = body.model_dump(exclude_none=True, exclude={"kind", "goal_id", "who"})
    return _json(await mgr.start(body.kind, body.goal_id, config, body.who))


@router.get("/schedule")
async def schedule(mgr: Mgr) -> Any:
    """Unattended learning: on or off, what it is doing or why it waits, when the next micro and
    learning cycles are due, the budget used (the same as /health's selflearn section)."""
    return _json(mgr.health())


@router.get("/cycles")
async def list_cycles(
    mgr: Mgr,
    status: Literal["running", "done", "failed", "stopped", "aborted"] | None = None,
    goal_id: int | None = Query(None, ge=1, le=2**31 - 1),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2**31 - 1),
) -> Any:
    rows = await mgr.pool().fetch(q("mgr_cycle_list"), status, goal_id, limit, offset)
    return _json([dict(r) for r in rows])


@router.get("/cycles/{cycle_id}")
async def get_cycle(cycle_id: uuid.UUID, mgr: Mgr) -> Any:
    return _json(await mgr.get(cycle_id))


@router.post("/cycles/{cycle_id}/stop")
async def stop_cycle(cycle_id: uuid.UUID, mgr: Mgr) -> Any:
    """Ask a running cycle to stop (its experiment stops too; nothing is activated)."""
    return _json(await mgr.stop(cycle_id))


# ---- proposals -------------------------------------------------------------------------------


class DecisionIn(BaseModel):
    who: str = Field(default="admin api", min_length=1, max_length=200)
    note: str = Field(default="", max_length=2000)


@router.get("/proposals")
async def list_proposals(
    mgr: Mgr,
    status: Literal["pending", "approved", "rejected", "superseded"] | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> Any:
    """Critical changes a cycle found worth shipping, with their evidence (verdict, metrics)."""
    return _json([dict(r) for r in await mgr.pool().fetch(q("mgr_proposal_list"), status, limit)])


@router.get("/proposals/{proposal_id}")
async def get_proposal(proposal_id: Id, mgr: Mgr) -> Any:
    row = await mgr.pool().fetchrow(q("mgr_proposal_get"), proposal_id)
    if row is None:
        raise NotFound(f"proposal {proposal_id} not found")
    return _json(dict(row))


@router.post("/proposals/{proposal_id}/approve")
async def approve_proposal(proposal_id: Id, body: DecisionIn, mgr: Mgr) -> Any:
    """A person approves: the proposed version is activated through the Tuner (guarded again),
    in the same transaction as the decision."""
    prop = await get_proposal(proposal_id, mgr)
    why = f"proposal {proposal_id} approved" + (f": {body.note}" if body.note else "")
    change = tuner.Change("person", body.who, why, _uuid(prop["experiment_id"]))
    async with mgr.pool().acquire() as conn, conn.transaction():
        await _decide(conn, proposal_id, "approved", body)
        previous = await tuner.activate_parameter_version(conn, prop["version"], change)
    mgr.invalidate()
    return {**await get_proposal(proposal_id, mgr), "active": prop["version"], "previous": previous}


@router.post("/proposals/{proposal_id}/reject")
async def reject_proposal(proposal_id: Id, body: DecisionIn, mgr: Mgr) -> Any:
    """A person rejects: nothing changes."""
    await get_proposal(proposal_id, mgr)
    async with mgr.pool().acquire() as conn:
        await _decide(conn, proposal_id, "rejected", body)
    return await get_proposal(proposal_id, mgr)


async def _decide(conn: Any, proposal_id: int, status: str, body: DecisionIn) -> None:
    if (
        await conn.fetchval(q("mgr_proposal_decide"), proposal_id, status, body.who, body.note)
        is None
    ):
        raise Conflict(f"proposal {proposal_id} was already decided")


def _uuid(value: Any) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


# ---- reports ---------------------------------------------------------------------------------


@router.get("/reports")
async def list_reports(mgr: Mgr, limit: int = Query(50, ge=1, le=500)) -> Any:
    """Finished cycles (each has a report), newest first."""
    rows = await mgr.pool().fetch(q("mgr_cycle_list"), None, None, limit, 0)
    return _json([dict(r) for r in rows if r["has_report"]])


@router.get(
    "/reports/{cycle_id}",
    responses={200: {"content": {"text/markdown": {}, "text/html": {}, "application/json": {}}}},
)
async def get_report(
    cycle_id: uuid.UUID, mgr: Mgr, format: Literal["md", "html", "json"] = "md"
) -> Any:
    """A finished cycle's report: Markdown (default), HTML, or the facts it is made from."""
    row = await mgr.pool().fetchrow(q("mgr_cycle_report"), cycle_id)
    if row is None or row["report_md"] is None:
        raise NotFound(f"cycle {cycle_id} has no report (not found or still running)")
    facts = (row["result"] or {}).get("report") or {}
    if format == "json":
        return _json(facts)
    if format == "html":
        return HTMLResponse(reports.html(facts), headers={"Content-Security-Policy": REPORT_CSP})
    return PlainTextResponse(row["report_md"], media_type="text/markdown; charset=utf-8")
