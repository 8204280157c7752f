"""The memory browser: search (by meaning, through the retrieval of /v1/context, or by exact
words) and page through the user's memories, provenance, delete (confirmed, then said done)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from maas.api.context import ApiContext
from maas.api.deps import get_api
from maas.api.inputs import BIGINT_MAX
from maas.db.queries import q
from maas.memory.search import Candidate
from web.queries import wq
from web.render import render
from web.retrieval import by_meaning
from web.routes.common import PAGE, Owner, Rt, form, not_found

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Search:
    """What the browser was asked for; it rebuilds the page's own address."""

    text: str = ""
    exact: bool = False  # exact words (full text + substring) instead of by meaning
    closed: bool = False
    page: int = 1

    def query_string(self, page: int | None = None) -> str:
        params: dict[str, Any] = {"q": self.text} if self.text else {}
        if self.exact:
            params["exact"] = "1"
        if self.closed:
            params["closed"] = "1"
        if (page or self.page) > 1:
            params["page"] = page or self.page
        return urlencode(params)

    @property
    def meaning(self) -> bool:
        return bool(self.text) and not self.exact


@router.get("/ui/memories")
async def memories_page(
    request: Request,
    rt: Rt,
    who: Owner,
    q_: Annotated[str, Query(alias="q", max_length=1000)] = "",
    exact: bool = False,
    closed: bool = False,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    deleted: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
) -> Response:
    assert who.user is not None
    asked = Search(q_.replace("\x00", "").strip(), exact, closed, page)
    rows, scored, more = await _find(rt, who.user.id, asked)
    items = await _with_sources(rt, who.user.id, rows, scored)
    return render(
        request,
        "pages/memories.html",
        who,
        items=items,
        asked=asked,
        deleted=deleted,
        prev_qs=asked.query_string(page - 1) if page > 1 else None,
        next_qs=asked.query_string(page + 1) if more else None,
        here_qs=asked.query_string(),
        first_qs=asked.query_string(1),
    )


async def _find(
    rt: Any, user_id: Any, asked: Search
) -> tuple[list[Any], dict[int, Candidate], bool]:
    """This page's memories (and whether there are more): by meaning, best first, or newest
    first (every memory, or those matching the exact words)."""
    offset = (asked.page - 1) * PAGE
    if not asked.meaning:
        rows = await rt.pool.fetch(
            q("list_memories"), user_id, asked.text or None, PAGE + 1, offset, asked.closed
        )
        return list(rows[:PAGE]), {}, len(rows) > PAGE
    found = [c for c in await by_meaning(rt, user_id, asked.text) if asked.closed or c.valid]
    shown = found[offset : offset + PAGE]
    rows = await rt.pool.fetch(wq("web_memories_by_id"), [c.id for c in shown], user_id)
    by_id = {r["id"]: r for r in rows}
    return (
        [by_id[c.id] for c in shown if c.id in by_id],
        {c.id: c for c in shown},
        len(found) > offset + PAGE,
    )


async def _with_sources(
    rt: Any, user_id: Any, rows: list[Any], scored: dict[int, Candidate]
) -> list[dict[str, Any]]:
    ids = sorted({i for r in rows for i in r["source_message_ids"]})
    found = await rt.pool.fetch(q("memory_sources"), ids, user_id) if ids else []
    sources = {r["id"]: r for r in found}
    return [
        {
            "m": r,
            "slot": slot_label(r["slot"]),
            "sources": [sources[i] for i in r["source_message_ids"] if i in sources],
            "hit": scored.get(r["id"]),
        }
        for r in rows
    ]


def slot_label(slot: str | None) -> str | None:
    """A slot key (`user|my name`: whose fact, then what it is about) as words: `my name (user)`."""
    if not slot:
        return None
    who, _, what = slot.partition("|")
    return f"{what} ({who})" if what else who


@router.post("/ui/memories/{memory_id}/delete")
async def delete_memory(
    request: Request,
    memory_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)],
    api: Annotated[ApiContext, Depends(get_api)],
    who: Owner,
) -> Response:
    """A POST form with the SameSite=Strict session cookie (one from another site is refused
    before this runs: maas.api.identity). The runs' repository erases it, as DELETE
    /v1/memories/{id} does (its text leaves the runs that quoted it too). Back to the same search
    and page, saying it is done."""
    assert who.user is not None
    back = _back((await form(request)).get("back", ""))
    if not await api.repo.erase_memory(memory_id, who.user.id):
        return not_found(request, who, "This memory does not exist or is not yours.")
    joiner = "&" if back else ""
    return RedirectResponse(f"/ui/memories?{back}{joiner}deleted={memory_id}", status_code=303)


def _back(raw: str) -> str:
    """Back to the same search and page, rebuilt from known fields only; a `back` that is not
    such a query (too many fields) leads to the first page."""
    try:
        fields = parse_qs(raw, max_num_fields=6)
    except ValueError:
        return ""
    page = fields.get("page", ["1"])[0]
    return Search(
        fields.get("q", [""])[0][:1000],
        "exact" in fields,
        "closed" in fields,
        int(page) if page.isdigit() and len(page) <= 4 else 1,
    ).query_string()
