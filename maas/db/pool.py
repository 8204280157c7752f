"""asyncpg pool with JSON codecs; every connection speaks UTC."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )


async def create_pool(dsn: str, *, min_size: int, max_size: int, timeout_s: float) -> Any:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        timeout=timeout_s,
        command_timeout=max(timeout_s * 6, 30),
        server_settings={"timezone": "UTC", "application_name": "maas"},
    )


async def connect(
    dsn: str, timeout_s: float = 10.0, application_name: str = "maas"
) -> asyncpg.Connection:
    """One connection outside the pool; application_name shows in pg_stat_activity."""
    settings = {"timezone": "UTC", "application_name": application_name}
    conn = await asyncpg.connect(dsn, timeout=timeout_s, server_settings=settings)
    await _init_connection(conn)
    return conn
