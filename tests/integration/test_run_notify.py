"""The run trigger's doorbell: an end rings for the next run of its thread only when one waits."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

INSERT_RUN = """
INSERT INTO maas.pipeline_runs (user_id, thread_id, query, mode, stop_at)
VALUES ($1, $2, $3, 'offline', 'COMPLETED') RETURNING id
"""


async def _user_and_thread(conn: Any) -> tuple[Any, Any]:
    user = await conn.fetchval(
        "INSERT INTO maas.users (name, api_key_hash, key_prefix)"
        " VALUES ('u', 'h', 'p') RETURNING id"
    )
    thread = await conn.fetchval(
        "INSERT INTO maas.threads (user_id, title) VALUES ($1, 't') RETURNING id", user
    )
    return user, thread


async def test_an_ended_run_names_the_waiting_run_of_its_thread_only(db_url: str) -> None:
    conn = await asyncpg.connect(db_url)
    heard: list[str] = []
    try:
        await conn.add_listener("maas_runs", lambda *a: heard.append(a[-1]))
        user, thread = await _user_and_thread(conn)
        first = await conn.fetchval(INSERT_RUN, user, thread, "one")
        second = await conn.fetchval(INSERT_RUN, user, thread, "two")
        end = "UPDATE maas.pipeline_runs SET status = $2::text::maas.run_status WHERE id = $1"
        await conn.execute(end, first, "COMPLETED")  # the second waits for it
        await conn.execute(end, second, "FAILED")  # nobody waits for this one
        other = await conn.fetchval(INSERT_RUN, user, None, "no thread")
        await conn.execute(end, other, "COMPLETED")
        await asyncio.sleep(0.2)
    finally:
        await conn.close()
    unblocked = [p for p in heard if p.startswith("UNBLOCKED:")]
    assert unblocked == [f"UNBLOCKED:{second}"]
    assert f"COMPLETED:{first}" in heard and f"FAILED:{second}" in heard


async def test_a_thread_is_claimed_in_order_and_ended_runs_leave_the_queue(db_url: str) -> None:
    """claim_run: the oldest claimable run first; a run waits while an earlier run of its thread
    is unfinished; a run that reached its stop_at (a /v1/context run at READY) is never claimed."""
    from maas.db.queries import q

    conn = await asyncpg.connect(db_url)
    try:
        user, thread = await _user_and_thread(conn)
        first = await conn.fetchval(INSERT_RUN, user, thread, "one")
        second = await conn.fetchval(INSERT_RUN, user, thread, "two")
        other = await conn.fetchval(INSERT_RUN, user, None, "no thread")
        ended = await conn.fetchval(
            "INSERT INTO maas.pipeline_runs (user_id, query, mode, stop_at, status)"
            " VALUES ($1, 'ctx', 'offline', 'READY', 'READY') RETURNING id",
            user,
        )

        async def claim(status: str, working: str) -> Any:
            row = await conn.fetchrow(q("claim_run"), status, working, 30.0, "test")
            return row["id"] if row else None

        assert await claim("NEW", "ANALYZING") == first
        assert await claim("NEW", "ANALYZING") == other
        assert await claim("NEW", "ANALYZING") is None  # "two" waits for "one"
        assert await claim("READY", "RESPONDING") is None  # the context run has ended
        await conn.execute(
            "UPDATE maas.pipeline_runs SET status = 'COMPLETED' WHERE id = $1", first
        )
        assert await claim("NEW", "ANALYZING") == second
        assert ended is not None
    finally:
        await conn.close()
