"""asyncpg pool with JSON codecs; every connection speaks UTC."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson

# Every session: UTC, and no parallel query. A memory service runs many short queries at once;
# worker processes cost more to start than they save, and a generic plan (asyncpg prepares
# every statement; Postgres switches to a generic plan after five runs) launched two of them for
# the vector arm of every search even when it had no vector: 5.7 ms per search.
SESSION = {"timezone": "UTC", "max_parallel_workers_per_gather": "0"}


def _dumps(value: Any) -> str:
    """As json.dumps for what we store (dict keys that are not strings become strings)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    # orjson: every run row carries its parameters and analyzer output as JSON, decoded at each
    # claim and read; the standard library's codec was a few percent of the service's CPU.
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(
            typ, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog", format="text"
        )


class PoolConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection released without asyncpg's reset query.

    asyncpg sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every
    release: one more round trip per pool use (a chat makes ~12). Nothing here leaves session
    state on a pooled connection: set_config is transaction-local, and LISTEN and advisory locks
    use connections of their own. asyncpg still rolls back a transaction left open on release.
    """

    def get_reset_query(self) -> str:
        return ""


# The search pool's sessions plan each statement once (generic plan). Postgres kept planning the
# lexical search anew on every call (1 ms of its CPU per chat: the generic plan's estimated cost
# is higher than a custom one's, its measured time lower: 2.5 vs 3.1 ms at 10k memories, 1.0 vs
# 1.5 at 1k). The search SQL is written to be safe under a generic plan (see search_memories);
# a search with an embedding or trigram terms asks for a custom plan in its own transaction.
GENERIC_PLANS = {"plan_cache_mode": "force_generic_plan"}


async def create_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    timeout_s: float,
    settings: dict[str, str] | None = None,
) -> Any:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        connection_class=PoolConnection,
        timeout=timeout_s,
        command_timeout=max(timeout_s * 6, 30),
        server_settings=SESSION | (settings or {}) | {"application_name": "maas"},
    )


async def connect(
    dsn: str,
    timeout_s: float = 10.0,
    application_name: str = "maas",
    settings: dict[str, str] | None = None,
) -> asyncpg.Connection:
    """One connection outside the pool; application_name shows in pg_stat_activity."""
    settings = SESSION | (settings or {}) | {"application_name": application_name}
    conn = await asyncpg.connect(dsn, timeout=timeout_s, server_settings=settings)
    await _init_connection(conn)
    return conn


async def close_quietly(conn: Any) -> None:
    """Close a connection of our own; a dead socket (or a server that is away) is terminated."""
    if conn is None or conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), 2.0)
    except Exception:  # noqa: BLE001 (the socket is dead: nothing to say goodbye to)
        conn.terminate()
