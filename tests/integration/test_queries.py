"""Every named SQL query PREPAREs against the migrated schema, so a typo fails CI."""

from __future__ import annotations

import asyncpg
import pytest

from maas.db.pool import connect
from maas.db.queries import all_queries, parse_sql


def test_parse_sql_splits_named_blocks() -> None:
    text = "-- file comment\n-- name: one\nSELECT 1;\n\n-- name: two\n-- $1 x\nSELECT $1::int\n"
    assert parse_sql(text) == {"one": "SELECT 1", "two": "-- $1 x\nSELECT $1::int"}


def test_parse_sql_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        parse_sql("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n")


async def test_every_query_prepares(db_url: str) -> None:
    queries = all_queries()
    assert len(queries) > 40
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


async def test_every_bench_query_prepares(db_url: str) -> None:
    """The benchmarks' own blocks (bench/bench.sql) against the same schema."""
    from bench.queries import bench_queries

    queries = bench_queries()
    assert "bench_insert_messages" in queries
    conn = await connect(db_url)
    try:
        for sql in queries.values():
            await conn.prepare(sql)
    finally:
        await conn.close()
