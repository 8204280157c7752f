"""Every named SQL query of selflearn PREPAREs against the migrated schema."""

from __future__ import annotations

import asyncpg

from maas.db.pool import connect
from maas.db.queries import all_queries as maas_queries
from selflearn.queries import all_queries


async def test_every_selflearn_query_prepares(db_url: str) -> None:
    queries = all_queries()
    assert len(queries) >= 8 and not set(queries) & set(maas_queries())
    conn = await connect(db_url)
    failures = {}
    try:
        for name, sql in queries.items():
            try:
                await conn.prepare(sql)
            except asyncpg.PostgresError as exc:
                failures[name] = str(exc)
    finally:
        await conn.close()
    assert failures == {}
