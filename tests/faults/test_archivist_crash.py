"""3. A crash between the archivist's memory writes and its job completion.

The writes and the job's completion are one transaction: the test holds the thread row so the
archivist's commit stops right after writing memories (they are visible as locks of its backend,
not as rows), kills the service there, and shows that nothing was committed, that the replay
writes every memory once, and that a second replay adds none.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import asyncpg

from bench.scripted_llm import Reply, ScriptedLLM
from tests.faults.conftest import (
    LEASE_S,
    Fleet,
    fault_env,
    llm_env,
    new_user,
    sql,
    wait_for,
    wait_status,
)

FACTS = "I live in Porto near the river. My dog is called Rex. I work as a baker at night."
EXPECTED = {
    "I live in Porto near the river.",
    "My dog is called Rex.",
    "I work as a baker at night.",
}
BLOCKED_COMMIT = """
SELECT a.pid FROM pg_stat_activity a
WHERE a.application_name = 'maas' AND a.wait_event_type = 'Lock'
  AND a.query LIKE '%archived_upto%'
  AND EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
              WHERE l.pid = a.pid AND c.relname = 'memories' AND l.mode = 'RowExclusiveLock')
"""


def memories(dsn: str) -> list[str]:
    return [r["text"] for r in sql(dsn, "SELECT text FROM maas.memories ORDER BY id")]


def job(dsn: str, reason: str | None = None) -> Any:
    """The first archive job (of that reason)."""
    query = "SELECT * FROM maas.archive_jobs WHERE reason = coalesce($1, reason) ORDER BY id"
    return sql(dsn, query, reason)[0]


async def hold_thread_then_kill(dsn: str, thread_id: str, server: Any) -> None:
    """Lock the thread row (FOR NO KEY UPDATE: memory inserts' FK checks still pass, the
    archived_upto update waits), SIGKILL the service while its commit waits, then let go."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT 1 FROM maas.threads WHERE id = $1 FOR NO KEY UPDATE", thread_id
            )
            for _ in range(200):
                await conn.execute("SELECT pg_stat_clear_snapshot()")  # fresh activity view
                if await conn.fetch(BLOCKED_COMMIT):
                    break
                await asyncio.sleep(0.05)
            else:
                seen = await conn.fetch(
                    "SELECT application_name, state, wait_event_type, query"
                    " FROM pg_stat_activity WHERE datname = current_database()"
                )
                raise AssertionError(f"the archivist's commit never blocked: {seen}")
            assert await conn.fetchval("SELECT count(*) FROM maas.memories") == 0
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(timeout=10)
    finally:
        await conn.close()


def test_crash_between_memory_writes_and_job_completion(
    db_url: str, fleet: Fleet, scripted: ScriptedLLM
) -> None:
    # The turn's job waits for its batch all along: the close's dialog pass archives the turn.
    env = fault_env(db_url, MAAS_TURN_BATCH_WAIT_S="3600", **llm_env(scripted.base_url))
    server = fleet.start(env)
    alice = new_user(server)
    chat = alice.post("/v1/chat", json={"message": FACTS}).json()
    wait_status(alice, chat["run_id"], {"COMPLETED"})
    scripted.push(Reply(delay_s=1.0), stage="archivist")  # time to take the lock first
    assert alice.post(f"/v1/threads/{chat['thread_id']}/close").status_code == 200
    wait_for(lambda: job(db_url, "closed")["status"] == "running", 10, "archive job claimed")
    asyncio.run(hold_thread_then_kill(db_url, chat["thread_id"], server))

    # The killed transaction left nothing: no memory, the job still leased, nothing archived.
    assert memories(db_url) == []
    assert job(db_url, "closed")["status"] == "running"
    assert sql(db_url, "SELECT archived_upto FROM maas.threads")[0][0] == 0

    server.start()  # the lease runs out, the job is requeued and replayed
    closed = lambda: job(db_url, "closed")  # noqa: E731
    wait_for(lambda: closed()["status"] == "done", LEASE_S + 10, "replayed job done")
    assert set(memories(db_url)) == EXPECTED and len(memories(db_url)) == 3
    assert closed()["memories_created"] == 3 and closed()["attempts"] == 2
    assert len(scripted.requests_for("archivist")) == 2

    # A second replay of the same messages (as after a crash right after the commit) adds none.
    sql(db_url, "UPDATE maas.threads SET archived_upto = 0, consolidated_upto = 0")
    sql(
        db_url,
        "UPDATE maas.archive_jobs SET status = 'queued', attempts = 0, memories_created = 0"
        " WHERE reason = 'closed'",
    )
    sql(db_url, "SELECT pg_notify('maas_archive', 'queued:0')")
    wait_for(lambda: len(scripted.requests_for("archivist")) == 3, 10, "third archivist call")
    wait_for(lambda: closed()["status"] == "done", 10, "second replay done")
    assert len(memories(db_url)) == 3 and closed()["memories_created"] == 0
    listed = alice.get("/v1/memories").json()["memories"]
    assert {m["text"] for m in listed} == EXPECTED


def test_crash_in_a_per_turn_archive_job_stores_each_fact_once(
    db_url: str, fleet: Fleet, scripted: ScriptedLLM
) -> None:
    """The same crash on the per-turn path (issue 17): no close, the turn's own job."""
    env = fault_env(db_url, MAAS_TURN_BATCH_TURNS="1", **llm_env(scripted.base_url))
    server = fleet.start(env)
    alice = new_user(server)
    scripted.push(Reply(delay_s=1.0), stage="archivist")  # time to take the lock first
    chat = alice.post("/v1/chat", json={"message": FACTS}).json()
    wait_status(alice, chat["run_id"], {"COMPLETED"})
    wait_for(lambda: job(db_url)["status"] == "running", 10, "turn job claimed")
    assert job(db_url)["reason"] == "turn"
    asyncio.run(hold_thread_then_kill(db_url, chat["thread_id"], server))
    assert memories(db_url) == []

    server.start()  # the lease runs out, the turn job is requeued and replayed
    wait_for(lambda: job(db_url)["status"] == "done", LEASE_S + 10, "replayed turn job done")
    assert set(memories(db_url)) == EXPECTED and len(memories(db_url)) == 3
    assert job(db_url)["attempts"] == 2
    # Closing the thread afterwards runs its dialog pass, which stores nothing again.
    assert alice.post(f"/v1/threads/{chat['thread_id']}/close").status_code == 200
    wait_for(lambda: job(db_url, "closed")["status"] == "done", 10, "the close's pass done")
    assert len(sql(db_url, "SELECT id FROM maas.archive_jobs")) == 2
    assert len(memories(db_url)) == 3 and job(db_url, "closed")["memories_created"] == 0
