"""Test suites and test runs (#4), their routes: list the suites, start a run in the background,
read results.

A user sees only their own test runs (404 for others'); the admin key sees all of them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from maas.api.deps import get_runtime
from maas.api.principal import Principal, principal
from maas.db.queries import q
from maas.errors import NotFound
from maas.runtime.context import Runtime
from maas.testsuite.manager import TestRuns
from maas.testsuite.suite import Suite, load_all, parse

router = APIRouter(tags=["test runs"])
Rt = Annotated[Runtime, Depends(get_runtime)]
Who = Annotated[Principal, Depends(principal)]


class TestRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    suite: str | None = Field(default=None, min_length=1, max_length=64, description="a suite name")
    suite_def: dict[str, Any] | None = Field(
        default=None, description="an inline suite, validated like a suite file"
    )
    mode: Literal["mock", "live"] = "mock"

    @model_validator(mode="after")
    def _one_suite(self) -> TestRunIn:
        if (self.suite is None) == (self.suite_def is None):
            raise ValueError("give exactly one of 'suite' (a name) or 'suite_def' (a suite)")
        return self


def manager(request: Request) -> TestRuns:
    found: TestRuns = request.app.state.test_runs
    return found


def _resolve(body: TestRunIn) -> Suite:
    if body.suite_def is not None:
        return parse(body.suite_def, "suite_def")
    suites, _ = load_all()
    if body.suite not in suites:
        raise NotFound(f"test suite {body.suite!r} not found")
    return suites[body.suite]


@router.get("/v1/test-suites")
async def list_suites(_who: Who) -> dict[str, Any]:
    """The suite files: valid ones by name; invalid ones with the file and field at fault."""
    suites, errors = load_all()
    return {
        "suites": [
            {"name": s.name, "description": s.description, "steps": len(s.steps)}
            for s in suites.values()
        ],
        "invalid": [{"file": e.source, "error": e.message} for e in errors],
    }


@router.post("/v1/test-runs", status_code=202)
async def start_test_run(
    body: TestRunIn, who: Who, runs: Annotated[TestRuns, Depends(manager)]
) -> JSONResponse:
    """Start a suite; it runs in the background. Poll GET /v1/test-runs/{id} for the steps."""
    suite = _resolve(body)
    row = await runs.start(who.user_id, suite, body.mode)
    payload = {
        "id": str(row["id"]),
        "status": row["status"],
        "suite": suite.name,
        "mode": body.mode,
        "steps_total": len(suite.steps),
        "started_at": row["started_at"].isoformat(),
    }
    return JSONResponse(payload, status_code=202)


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "suite": row["suite_name"],
        "suite_hash": row["suite_hash"],
        "mode": row["mode"],
        "status": row["status"],
        "error": row["error"],
        "owner_id": row["owner_id"],
        "started_at": row["started_at"],
        "finished_at": row["finished_at"],
        "steps_total": row["steps_total"],
        "passed": row["passed"],
        "failed": row["failed"],
    }


def _step(row: Any) -> dict[str, Any]:
    return {
        "index": row["idx"],
        "action": row["action"],
        "description": row["description"],
        "user": row["user_name"],
        "thread": row["thread_name"],
        "run_id": row["run_id"],
        "thread_id": row["thread_id"],
        "passed": row["passed"],
        "ms": row["ms"],
        "checks": row["checks"],
    }


@router.get("/v1/test-runs")
async def list_test_runs(
    rt: Rt,
    who: Who,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Any:
    """History, newest first: the caller's own test runs (the admin: everyone's)."""
    rows = await rt.pool.fetch(q("list_test_runs"), who.user_id, who.admin, limit, offset)
    runs = [_summary(r) for r in rows]
    return jsonable_encoder({"test_runs": runs, "limit": limit, "offset": offset})


@router.get("/v1/test-runs/{run_id}")
async def get_test_run(run_id: uuid.UUID, rt: Rt, who: Who) -> Any:
    """One test run with each finished step's checks and the users it created."""
    async with rt.pool.acquire() as conn:
        row = await conn.fetchrow(q("get_test_run"), run_id, who.user_id, who.admin)
        if row is None:
            raise NotFound(f"test run {run_id} not found")
        steps = await conn.fetch(q("test_run_steps"), run_id)
        users = await conn.fetch(q("test_run_users"), run_id)
    detail = _summary(row) | {
        "users": {u["name"]: u["user_id"] for u in users},
        "steps": [_step(s) for s in steps],
        "suite_def": row["suite"],
    }
    return jsonable_encoder(detail)
