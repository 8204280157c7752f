"""The memory browser: search and page through the user's memories, provenance, delete."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from maas.api.context import ApiContext
from maas.api.deps import get_api
from maas.api.inputs import BIGINT_MAX
from maas.db.queries import q
from web.render import render
from web.routes.common import PAGE, Owner, Rt, form, not_found

router = APIRouter(include_in_schema=False)


def _query_string(text: str, closed: bool, page: int) -> str:
    params: dict[str, Any] = {"q": text} if text else {}
    if closed:
        params["closed"] = "1"
    if page > 1:
        params["page"] = page
    return urlencode(params)


@router.get("/ui/memories")
async def memories_page(
    request: Request,
    rt: Rt,
    who: Owner,
    q_: Annotated[str, Query(alias="q", max_length=1000)] = "",
    closed: bool = False,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    assert who.user is not None
    text = q_.replace("\x00", "").strip()
    async with rt.pool.acquire() as conn:
        rows = await conn.fetch(
            q("list_memories"), who.user.id, text or None, PAGE + 1, (page - 1) * PAGE, closed
        )
        ids = sorted({i for r in rows for i in r["source_message_ids"]})
        found = await conn.fetch(q("memory_sources"), ids, who.user.id) if ids else []
    sources = {r["id"]: r for r in found}
    items = [
        {"m": r, "sources": [sources[i] for i in r["source_message_ids"] if i in sources]}
        for r in rows[:PAGE]
    ]
    return render(
        request,
        "pages/memories.html",
        who,
        items=items,
        text=text,
        closed=closed,
        page=page,
        prev_qs=_query_string(text, closed, page - 1) if page > 1 else None,
        next_qs=_query_string(text, closed, page + 1) if len(rows) > PAGE else None,
        here_qs=_query_string(text, closed, page),
    )


@router.post("/ui/memories/{memory_id}/delete")
async def delete_memory(
    request: Request,
    memory_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)],
    api: Annotated[ApiContext, Depends(get_api)],
    who: Owner,
) -> Response:
    """A POST form with the SameSite=Strict session cookie (one from another site is refused
    before this runs: maas.api.identity). The runs' repository erases it, as DELETE
    /v1/memories/{id} does (its text leaves the runs that quoted it too)."""
    assert who.user is not None
    back = _back((await form(request)).get("back", ""))
    if not await api.repo.erase_memory(memory_id, who.user.id):
        return not_found(request, who, "This memory does not exist or is not yours.")
    return RedirectResponse(f"/ui/memories?{back}", status_code=303)


def _back(raw: str) -> str:
    """Back to the same search and page, rebuilt from known fields only; a `back` that is not
    such a query (too many fields) leads to the first page."""
    try:
        fields = parse_qs(raw, max_num_fields=5)
    except ValueError:
        return ""
    page = fields.get("page", ["1"])[0]
    text = fields.get("q", [""])[0][:1000]
    return _query_string(
        text, "closed" in fields, int(page) if page.isdigit() and len(page) <= 4 else 1
    )
