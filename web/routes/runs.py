"""Runs: a list of recent runs and the run inspector. A user sees their own runs; the admin key
sees every user's, read-only (no page here changes a run)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from maas.api.views import timings_ms, trace_memories
from maas.db.queries import q
from maas.pipeline.status import Status, is_done
from web.auth import Viewer
from web.inspector import budget, fill_percent, spans, sub_spans, unaccounted_ms
from web.queries import wq
from web.render import render
from web.routes.common import PAGE, Rt, Who, not_found

router = APIRouter(include_in_schema=False)


CLIENTS = ("client", "openai", "test-runner", "bench", "emulator")  # migrations 0006 and 0034
STATUSES = tuple(s.value for s in Status)
UUID_OR_EMPTY = r"^$|^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$"


@dataclass(frozen=True)
class RunFilter:
    """The runs list's filters; the emulator's runs (self-learning's, many) hidden by default."""

    user: str = ""
    client: str = ""  # "" = every client but the emulator, "*" = every client
    status: str = ""
    thread: uuid.UUID | None = None

    def args(self) -> tuple[Any, ...]:
        return (self.user or None, self.client or None, self.status or None, self.thread)

    def of_user(self, name: str) -> str:
        """The same filters, for one user's runs."""
        return replace(self, user=name).query_string()

    def query_string(self, page: int = 1) -> str:
        fields = {"user": self.user, "client": self.client, "status": self.status}
        params: dict[str, Any] = {k: v for k, v in fields.items() if v}
        if self.thread:
            params["thread"] = str(self.thread)
        if page > 1:
            params["page"] = page
        return urlencode(params)


Client = Literal["", "*", "client", "openai", "test-runner", "bench", "emulator"]
RunStatus = Literal[
    "", "NEW", "ANALYZING", "ANALYZED", "ASSEMBLING", "READY", "RESPONDING", "COMPLETED", "FAILED"
]


@router.get("/ui/runs")
async def runs_page(
    request: Request,
    rt: Rt,
    who: Who,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    user: Annotated[str, Query(max_length=200)] = "",
    client: Client = "",
    status: RunStatus = "",
    thread: Annotated[str, Query(pattern=UUID_OR_EMPTY)] = "",
) -> Response:
    """An empty field is no filter (the form sends every field)."""
    one = uuid.UUID(thread) if thread else None
    shown = RunFilter(user.strip() if who.admin else "", client, status, one)
    rows = await rt.pool.fetch(
        wq("web_recent_runs"), who.owner, PAGE + 1, (page - 1) * PAGE, *shown.args()
    )
    return render(
        request,
        "pages/runs.html",
        who,
        runs=rows[:PAGE],
        page=page,
        more=len(rows) > PAGE,
        shown=shown,
        clients=CLIENTS,
        statuses=STATUSES,
        prev_qs=shown.query_string(page - 1),
        next_qs=shown.query_string(page + 1),
    )


async def _visible_run(conn: Any, run_id: uuid.UUID, who: Viewer) -> Any:
    """As GET /v1/runs/{id}: own runs, runs of the throwaway users of one's own test runs,
    and for the admin key any run."""
    run = await conn.fetchrow(wq("web_run"), run_id, who.owner)
    if run is None and who.owner is not None:
        owner = await conn.fetchval(q("run_owner_via_test_run"), run_id, who.owner)
        run = None if owner is None else await conn.fetchrow(wq("web_run"), run_id, owner)
    return run


@router.get("/ui/runs/{run_id}")
async def inspector_page(request: Request, run_id: uuid.UUID, rt: Rt, who: Who) -> Response:
    async with rt.pool.acquire() as conn:
        run = await _visible_run(conn, run_id, who)
        if run is None:
            return not_found(request, who, "This run does not exist or is not yours.")
        owner = run["user_id"]  # the admin reads as the run's owner; everything stays scoped
        history = [dict(e) for e in await conn.fetch(q("run_events"), run_id, 0, owner)]
        memories = await trace_memories(conn, run_id, owner)
        calls = await conn.fetch(q("run_llm_calls"), run_id, owner)
    limit, parts, timings = budget(run), sub_spans(run["stage_spans"]), timings_ms(run)
    return render(
        request,
        "pages/run.html",
        who,
        run=run,
        done=is_done(run["status"], run["stop_at"]),
        history=history,
        spans=spans(history, parts),
        parts=parts,
        outside_parts=unaccounted_ms(parts, timings.get("assembler")),
        timings=timings,
        memories=memories,
        calls=calls,
        budget=limit,
        fill=fill_percent(run["context_tokens"], limit),
        mine=who.user is not None and who.user.id == owner,
    )
