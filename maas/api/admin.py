"""Admin routes (admin key only) and the health check."""

from __future__ import annotations

import os
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from maas import __version__
from maas.api.context import ApiContext
from maas.api.deps import get_api, get_runtime, require_admin
from maas.api.inputs import NonBlank
from maas.api.users import erase
from maas.credentials import create_user
from maas.db.queries import q
from maas.errors import NotFound
from maas.runtime.context import Runtime

router = APIRouter(tags=["admin"])
Rt = Annotated[Runtime, Depends(get_runtime)]


class UserIn(BaseModel):
    name: NonBlank = Field(min_length=1, max_length=200)


@router.post("/v1/admin/users", status_code=201, dependencies=[Depends(require_admin)])
async def create_user_route(body: UserIn, rt: Rt) -> dict[str, Any]:
    """Create a user; the API key is shown once and stored only as a hash."""
    async with rt.pool.acquire() as conn:
        user_id, key = await create_user(conn, body.name)
    return {"user_id": str(user_id), "name": body.name, "api_key": key}


@router.post("/v1/admin/users/{user_id}/revoke", dependencies=[Depends(require_admin)])
async def revoke_user_route(user_id: uuid.UUID, rt: Rt) -> dict[str, Any]:
    """Revoke the user's API key: it answers 401 from now on; the data stays."""
    row = await rt.pool.fetchrow(q("revoke_user_key"), user_id)
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return {"user_id": str(user_id), "revoked_at": row["revoked_at"].isoformat()}


@router.delete("/v1/admin/users/{user_id}", dependencies=[Depends(require_admin)])
async def erase_user_route(user_id: uuid.UUID, rt: Rt) -> dict[str, Any]:
    """Erase a user and everything it owns; repeatable (a second call erases nothing)."""
    return {"user_id": str(user_id), "erased": await erase(rt, user_id)}


@router.get("/metrics", include_in_schema=False)
async def metrics(ctx: Annotated[ApiContext, Depends(get_api)]) -> Response:
    """Prometheus exposition: stage latency, failures, inferences and tokens, queue depth,
    listener health. Counts only, no user data; keep it on the operators' network."""
    rt = ctx.runtime
    rows = await rt.pool.fetch(q("queue_depth"))
    ctx.scrape_state["queue"] = {r["status"]: r["n"] for r in rows}
    ctx.scrape_state["listener"] = ctx.listener.as_dict()
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/health")
async def health(ctx: Annotated[ApiContext, Depends(get_api)]) -> JSONResponse:
    rt = ctx.runtime
    database = "ok"
    try:
        await rt.pool.fetchval(q("health_db"), timeout=2.0)
    except Exception as exc:  # noqa: BLE001 (any failure here is the answer, not an error)
        database = f"down: {type(exc).__name__}"
    listener = ctx.listener.as_dict()
    ok = database == "ok" and listener["connected"]
    body = {
        "status": "ok" if ok else "degraded",
        "database": database,
        "listener": listener,
        "mode": rt.models.mode,
        "model": None if rt.settings.offline else rt.settings.llm_model,
        "embedder": rt.models.embedder.name if rt.models.embedder else "none",
        "version": __version__,
        "process": {"pid": os.getpid(), "worker_id": rt.worker_id, "draining": ctx.draining()},
    }
    body.update({name: part() for name, part in ctx.health_parts.items()})
    return JSONResponse(body, status_code=200 if database == "ok" else 503)
