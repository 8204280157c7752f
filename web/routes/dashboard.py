"""The self-learning dashboard (/ui/dashboard): goals with progress and their metric over time,
running cycles with live progress, experiment results with effect sizes and CIs, proposals
waiting for approval, parameter versions with diffs and rollback, reports. Admin key only.

Pages are rendered here from selflearn's read models (selflearn.manager.views; web may import
selflearn, selflearn never imports web — import-linter). Every action (create a goal, start or
stop a cycle, approve, reject, roll back) is dashboard.js calling the admin JSON API with the
session cookie, so the dashboard and the API cannot drift apart. The report templates are
selflearn's own, rendered through this environment (autoescaped)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

from maas.params import params_from_settings
from selflearn.manager import goals, reports, views
from web.auth import Viewer
from web.goals import in_force, with_now
from web.render import PAGE_HEADERS, TEMPLATES, mode_badge, ms, short, when
from web.routes.common import Rt, Who, forbidden, not_found

router = APIRouter(include_in_schema=False)


def _environment() -> Environment:
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(TEMPLATES), FileSystemLoader(reports.TEMPLATES)]),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, ms=ms, short=short, pct=pct)
    reports.install(env)
    return env


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


ENV = _environment()


def page(request: Request, template: str, who: Viewer, **context: Any) -> HTMLResponse:
    html = ENV.get_template(template).render(
        viewer=who, mode=mode_badge(request), path=request.url.path, **context
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


def _admin_only(request: Request, who: Viewer) -> Response | None:
    if who.admin:
        return None
    return forbidden(request, who, "the dashboard steers self-learning: it needs the admin key")


@router.get("/ui/dashboard")
async def dashboard(request: Request, rt: Rt, who: Who, archived: bool = False) -> Response:
    """`archived`: list the archived goals too (each with Restore)."""
    refused = _admin_only(request, who)
    if refused:
        return refused
    manager = getattr(request.app.state, "selflearn_manager", None)
    schedule = manager.health()["schedule"] if manager is not None else None
    data = await views.overview(rt.pool, schedule)
    own = await params_from_settings(rt.settings).active()  # MaaS's own parameters
    async with rt.pool.acquire() as conn:
        await with_now(conn, data["goals"], await in_force(conn, data["active"], own))
        every = await goals.list_goals(conn, True)
    data["archived"] = [g for g in every if g["status"] == "archived"]
    return page(request, "pages/dashboard.html", who, show_archived=archived, **data)


@router.get("/ui/dashboard/cycles/{cycle_id}")
async def cycle_page(request: Request, cycle_id: uuid.UUID, rt: Rt, who: Who) -> Response:
    refused = _admin_only(request, who)
    if refused:
        return refused
    data = await views.cycle(rt.pool, cycle_id)
    if data is None:
        return not_found(request, who, "No such cycle.")
    return page(request, "pages/dashboard_cycle.html", who, **data)


@router.get("/ui/dashboard/parameters")
async def parameters_page(request: Request, rt: Rt, who: Who) -> Response:
    refused = _admin_only(request, who)
    if refused:
        return refused
    data = await views.parameters(rt.pool)
    return page(request, "pages/dashboard_parameters.html", who, **data)
