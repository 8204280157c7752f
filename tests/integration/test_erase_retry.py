"""Erasure retries a real deadlock with the user's own in-flight work, and gives up after a
bound (real Postgres: the deadlock is Postgres's own detection, no mock)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from maas.api import users
from tests.helpers import eventually, turn_archived

# The erase transaction blocked by the test's own in-flight work ($1, its backend pid): deleting
# the user waits for a row of its runs. Blocked by anything else (the per-turn archivist's key share
# on the user row), the erase does not yet hold the user row, so no cycle could be closed.
ERASE_WAITS = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'
  AND query LIKE '%DELETE FROM maas.users%' AND $1 = ANY(pg_blocking_pids(pid))
"""
DEADLOCKS = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"


@asynccontextmanager
async def in_flight_work(db_url: str, user_id: Any) -> AsyncIterator[asyncpg.Connection]:
    """A transaction of the user's own work holding its runs (as a stage commit does), that
    never is the deadlock's victim (its deadlock_timeout is far longer than the erase's)."""
    conn = await asyncpg.connect(db_url)
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL deadlock_timeout = '60s'")
            await conn.execute(
                "SELECT 1 FROM maas.pipeline_runs WHERE user_id = $1 FOR UPDATE", user_id
            )
            yield conn
    finally:
        await conn.close()


async def close_the_cycle(
    work: asyncpg.Connection, admin: asyncpg.Connection, user_id: Any
) -> None:
    """Once the erase waits for the runs `work` holds, `work` asks for the user row the erase is
    deleting: a cycle Postgres breaks by aborting the erase. The request is made in a savepoint
    and given back once granted, so the next erase attempt meets the same cycle."""
    await eventually(lambda: _erase_waits(admin, work.get_server_pid()), timeout=30)
    async with work.transaction():  # a savepoint
        await work.execute("SELECT 1 FROM maas.users WHERE id = $1 FOR KEY SHARE", user_id)
        raise _GiveBack()


class _GiveBack(Exception):
    pass


async def _erase_waits(admin: asyncpg.Connection, work_pid: int) -> bool:
    await admin.execute("SELECT pg_stat_clear_snapshot()")
    return bool(await admin.fetchval(ERASE_WAITS, work_pid))


async def _chatting_user(api: Any) -> Any:
    alice = await api.user()
    resp = await alice.post("/v1/chat", json={"message": "I keep bees in Porto."})
    assert resp.status_code == 200, resp.text
    await turn_archived(alice, resp.json()["thread_id"])  # no archivist in the way of the cycle
    return await api.service.runtime.pool.fetchval("SELECT id FROM maas.users WHERE name = 'alice'")


async def deadlocks(db_url: str, times: int, user_id: Any, holding: asyncio.Event) -> None:
    """Make the erase deadlock with in-flight work `times` times in a row, then let it go."""
    admin = await asyncpg.connect(db_url)
    try:
        async with in_flight_work(db_url, user_id) as work:
            holding.set()
            for _ in range(times):
                with pytest.raises(_GiveBack):
                    await close_the_cycle(work, admin, user_id)
                await asyncio.sleep(0)  # the erase's next attempt finds the runs held again
    finally:
        await admin.close()


async def test_erase_retries_a_real_deadlock_then_erases_everything(
    make_api: Any, db_url: str
) -> None:
    async with make_api() as api:
        user_id = await _chatting_user(api)
        pool = api.service.runtime.pool
        before = await pool.fetchval(DEADLOCKS)
        holding = asyncio.Event()
        cycle = asyncio.ensure_future(deadlocks(db_url, 2, user_id, holding))
        await holding.wait()  # the user's work holds its runs before the erase starts
        erased = await users.erase(api.service.runtime, user_id)
        await cycle
        assert erased["pipeline_runs"] == 1 and erased["messages"] == 2
        assert await pool.fetchval(DEADLOCKS) - before == 2  # two attempts lost, the third won
        assert await pool.fetchval("SELECT count(*) FROM maas.users WHERE id = $1", user_id) == 0
        assert await pool.fetchval("SELECT count(*) FROM maas.pipeline_runs") == 0


async def test_erase_gives_up_after_its_attempts_and_leaves_everything(
    make_api: Any, db_url: str
) -> None:
    async with make_api() as api:
        user_id = await _chatting_user(api)
        pool = api.service.runtime.pool
        before = await pool.fetchval(DEADLOCKS)
        holding = asyncio.Event()
        cycle = asyncio.ensure_future(deadlocks(db_url, users.ERASE_ATTEMPTS, user_id, holding))
        await holding.wait()  # the user's work holds its runs before the erase starts
        with pytest.raises(asyncpg.DeadlockDetectedError):
            await users.erase(api.service.runtime, user_id)
        await cycle
        assert await pool.fetchval(DEADLOCKS) - before == users.ERASE_ATTEMPTS
        assert await pool.fetchval("SELECT count(*) FROM maas.users WHERE id = $1", user_id) == 1
        assert await pool.fetchval("SELECT count(*) FROM maas.pipeline_runs") == 1
