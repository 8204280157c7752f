"""Tenants share the pipeline fairly: a flood of one user's runs cannot starve another's run
(claims, migration 0030), take every express slot (maas/pipeline/express.py) nor queue another
user's context behind its own (maas/runtime/fair.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Any

import asyncpg
import httpx

from bench.scripted_llm import Reply, default_content
from maas.runtime.fair import FairShare
from tests.helpers import eventually

FLOOD = 120
WORKERS = 2  # claimers per queue (W)
USERS = 2  # users with claimable runs (U)
BOUND = (USERS - 1) + WORKERS  # other users' claims ahead at each queue: U - 1, + W under way

# For each queue, the other users' claims made after the run entered that queue and before its
# own claim there (entered: created / analyzed / ready; claimed: analyzing / assembling /
# responding).
AHEAD = """
SELECT
  count(*) FILTER (WHERE a.analyzing_at > b.created_at AND a.analyzing_at < b.analyzing_at),
  count(*) FILTER (WHERE a.assembling_at > b.analyzed_at AND a.assembling_at < b.assembling_at),
  count(*) FILTER (WHERE a.responding_at > b.ready_at AND a.responding_at < b.responding_at)
FROM maas.pipeline_runs a JOIN maas.pipeline_runs b ON b.id = $1 AND a.user_id <> b.user_id
"""
UNFINISHED = "SELECT count(*) FROM maas.pipeline_runs WHERE status <> 'COMPLETED'"
ANSWERS_PER_RUN = """
SELECT count(*) AS runs, count(m.id) AS answers, count(DISTINCT m.run_id) AS answered
FROM maas.pipeline_runs r LEFT JOIN maas.messages m ON m.run_id = r.id AND m.role = 'assistant'
"""


async def test_a_flood_of_queued_runs_delays_another_users_run_by_at_most_u_minus_1_claims(
    make_api: Any, db_url: str
) -> None:
    """One user queues 120 runs (wait=false), then another user queues one. Whatever the flood,
    at each queue the quiet user's run waits for at most U - 1 = 1 claim of the flooding user
    that starts after it got there, plus the W = 2 claims under way: never for the backlog. The
    global FIFO claim served all 120 flood runs first. The flood still completes, exactly once."""
    queued = {"express_concurrency": 0, "rate_limit_per_min": 0}
    async with make_api(
        analyzer_concurrency=0, assembler_concurrency=0, responder_concurrency=0, **queued
    ) as api:  # nobody claims: the whole flood waits in the queue before the quiet run
        flooder, quiet = await api.user("flooder"), await api.user("quiet")
        for i in range(FLOOD):
            resp = await flooder.post("/v1/chat?wait=false", json={"message": f"flood {i}"})
            assert resp.status_code == 202, resp.text
        resp = await quiet.post("/v1/chat?wait=false", json={"message": "My cat is Miso."})
        run_id = resp.json()["run_id"]

    w = WORKERS
    async with make_api(analyzer_concurrency=w, assembler_concurrency=w, responder_concurrency=w,
                        **queued):  # fmt: skip
        conn = await asyncpg.connect(db_url)
        try:
            await eventually(lambda: _status_is(conn, run_id, "COMPLETED"), timeout=30)
            ahead = list(await conn.fetchrow(AHEAD, run_id))
            await eventually(lambda: _none(conn, UNFINISHED), timeout=60)
            counts = await conn.fetchrow(ANSWERS_PER_RUN)
        finally:
            await conn.close()
    assert all(n <= BOUND for n in ahead), f"flood claims ahead per queue: {ahead}"
    assert counts["runs"] == FLOOD + 1 == counts["answers"] == counts["answered"]


async def _status_is(conn: asyncpg.Connection, run_id: str, status: str) -> bool:
    found: str = await conn.fetchval(
        "SELECT status::text FROM maas.pipeline_runs WHERE id = $1", run_id
    )
    return found == status


async def _none(conn: asyncpg.Connection, sql: str) -> bool:
    return await conn.fetchval(sql) == 0


async def test_one_user_cannot_take_every_express_slot(make_api: Any, scripted: Any) -> None:
    """4 express slots, at most 2 per user, no stage workers: one user's 4 waiting chats hold 2
    slots (the other 2 wait in the queue), and another user's chat still drives its own run to
    its answer. When one user could take every slot, that chat waited in the queue (202)."""
    release = asyncio.Event()
    gate = asyncio.get_running_loop()

    def slow(stage: str | None, body: dict[str, Any]) -> Reply:
        if "flood" in str(body):  # the flooding user's calls wait until the test is done
            asyncio.run_coroutine_threadsafe(release.wait(), gate).result(timeout=30)
        return Reply(content=default_content(stage, body))

    scripted.set_handler(slow)
    llm = {"llm_base_url": scripted.base_url, "llm_api_key": "k", "llm_model": "scripted"}
    async with make_api(
        express_concurrency=4, express_per_user=2, chat_wait_s=3.0,
        analyzer_concurrency=0, assembler_concurrency=0, responder_concurrency=0, **llm,
    ) as api:  # fmt: skip
        flooder, quiet = await api.user("flooder"), await api.user("quiet")
        floods = [
            asyncio.ensure_future(flooder.post("/v1/chat", json={"message": f"flood {i}"}))
            for i in range(4)
        ]
        pool = api.service.runtime.pool
        await eventually(lambda: _floods(pool, 4))  # submitted: driven, or queued
        driven = await pool.fetchval(FLOOD_DRIVEN)
        answer = await quiet.post("/v1/chat", json={"message": "My cat is Miso."})
        release.set()
        await asyncio.gather(*floods)
    assert driven == 2
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "COMPLETED"


FLOOD_DRIVEN = "SELECT count(*) FROM maas.pipeline_runs WHERE status = 'ANALYZING'"


async def _floods(pool: Any, n: int) -> bool:
    return await pool.fetchval("SELECT count(*) FROM maas.pipeline_runs") == n


async def _waiting(share: Any, count: int) -> bool:
    return sum(len(queue) for queue in share.waiting.values()) == count


class Recorded(FairShare):
    """The service's share, noting whom each permit went to (as each is taken)."""

    def __init__(self, permits: int) -> None:
        super().__init__(permits)
        self.granted: list[str] = []

    def _take(self, tenant: Hashable) -> None:
        self.granted.append(str(tenant))
        super()._take(tenant)


async def test_a_users_burst_of_contexts_does_not_queue_another_users_behind_it(
    make_api: Any,
) -> None:
    """Contexts were built first come, first served: within its rate one tenant's burst of
    costly context requests held the CPU and the search connections, and another tenant's one
    request waited behind all of them (a probe: 0.04 s became 3.5 s). Now it waits for one of
    the burst's analyses, not for the burst."""
    async with make_api(context_slots=1) as api:
        hog, bob = await api.user("hog"), await api.user("bob")
        names = {
            (await c.get("/v1/users/me")).json()["user_id"]: n
            for c, n in ((hog, "hog"), (bob, "bob"))
        }
        share = api.service.runtime.context_share = Recorded(1)

        async def ask(client: httpx.AsyncClient) -> None:
            got = await client.post("/v1/context", json={"query": "where did I go hiking?"})
            assert got.status_code == 200, got.text

        async with share.turn("someone else"):  # the one slot is busy
            tasks = [asyncio.create_task(ask(hog)) for _ in range(4)]
            await eventually(lambda: _waiting(share, 4))
            tasks.append(asyncio.create_task(ask(bob)))
            await eventually(lambda: _waiting(share, 5))
        await asyncio.gather(*tasks)
        turns = [names.get(t, t) for t in share.granted]
        # first come, first served: ["someone else", "hog", "hog", "hog", "hog", "bob", ...]
        assert turns[:3] == ["someone else", "hog", "bob"], turns
        assert turns.count("hog") == 8 and turns.count("bob") == 2, turns  # analysis, search
        assert share.free == 1 and not share.waiting
