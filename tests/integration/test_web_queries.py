"""Every named query of the web UI (web/*.sql) is PREPAREd against the migrated schema, so a typo
fails here rather than on a page (maas's own test covers only maas/**/*.sql)."""

from __future__ import annotations

import asyncpg

from web.queries import web_queries


async def test_every_web_query_prepares(db_url: str) -> None:
    queries = web_queries()
    assert queries, "no web queries found"
    conn = await asyncpg.connect(db_url)
    try:
        for name, sql in queries.items():
            try:
                await conn.prepare(sql)
            except asyncpg.PostgresError as exc:
                raise AssertionError(f"{name}: {exc}") from exc
    finally:
        await conn.close()
