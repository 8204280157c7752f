"""A user's own memories: search/list with provenance, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.encoders import jsonable_encoder

from maas.api.context import ApiContext
from maas.api.deps import User, current_user, get_api, get_runtime
from maas.api.inputs import BIGINT_MAX, Text
from maas.db.queries import q
from maas.errors import NotFound
from maas.runtime.context import Runtime

router = APIRouter(prefix="/v1/memories", tags=["memories"])
Rt = Annotated[Runtime, Depends(get_runtime)]
Caller = Annotated[User, Depends(current_user)]
Api = Annotated[ApiContext, Depends(get_api)]


@router.get("")
async def list_memories(
    rt: Rt,
    user: Caller,
    query: Annotated[Text | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    include_closed: bool = False,
) -> Any:
    async with rt.pool.acquire() as conn:
        rows = await conn.fetch(
            q("list_memories"), user.id, query or None, limit, offset, include_closed
        )
        sources = await _sources(conn, user, rows)
    items = [
        {**dict(r), "sources": [sources[i] for i in r["source_message_ids"] if i in sources]}
        for r in rows
    ]
    return jsonable_encoder({"memories": items, "limit": limit, "offset": offset})


async def _sources(conn: Any, user: User, rows: list[Any]) -> dict[int, dict[str, Any]]:
    ids = sorted({i for r in rows for i in r["source_message_ids"]})
    found = await conn.fetch(q("memory_sources"), ids, user.id) if ids else []
    return {r["id"]: dict(r) for r in found}


@router.delete("/{memory_id}")
async def delete_memory(
    memory_id: Annotated[int, Path(ge=1, le=BIGINT_MAX)], api: Api, user: Caller
) -> dict[str, Any]:
    """The memory, and its text wherever runs quoted it (RunRepository.erase_memory)."""
    if not await api.repo.erase_memory(memory_id, user.id):
        raise NotFound(f"memory {memory_id} not found")
    return {"deleted": memory_id}
