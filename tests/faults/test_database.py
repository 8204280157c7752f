"""6-8. The listener connection killed, NOTIFY gone, Postgres restarted, three processes racing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import cycle
from typing import Any

import httpx

from bench.scripted_llm import Reply, ScriptedLLM
from tests.faults.conftest import (
    LEASE_S,
    Fleet,
    OwnPostgres,
    fault_env,
    llm_env,
    new_user,
    not_exactly_once,
    queue_runs,
    sql,
    wait_ended,
    wait_for,
    wait_status,
)

ALL = ["NEW", "ANALYZING", "ANALYZED", "ASSEMBLING", "READY", "RESPONDING", "COMPLETED"]
LISTENER = (
    "SELECT pid FROM pg_stat_activity"
    " WHERE application_name = 'maas-listener' AND datname = current_database()"
)


@contextmanager
def listener_kept_down(dsn: str, at_least_s: float = 1.0) -> Iterator[None]:
    """Kill the service's listener connection, and every new one it opens, until the block ends
    (and at least `at_least_s`): whatever is notified meanwhile is lost."""
    done = threading.Event()

    def kill() -> None:
        while not done.is_set():
            for row in sql(dsn, LISTENER):
                sql(dsn, "SELECT pg_terminate_backend($1)", row["pid"])
            time.sleep(0.02)

    killer = threading.Thread(target=kill, daemon=True)
    killer.start()
    started = time.monotonic()
    try:
        yield
        time.sleep(max(0.0, at_least_s - (time.monotonic() - started)))
    finally:
        done.set()
        killer.join(timeout=5)


def test_listener_killed_reconnects_and_queued_runs_complete_through_it(
    db_url: str, fleet: Fleet
) -> None:
    """P = 30 s, so polling cannot be what moves these runs. Ten runs are queued while every
    listener connection is killed (their notifications are lost, the workers sleep on); once the
    listener can reconnect, all ten complete within half of P, each once. What moves them is the
    reconnect and its wake-up of every worker (without that wake-up they wait for P: checked)."""
    server = fleet.start(fault_env(db_url, MAAS_POLL_S="30"))
    alice = new_user(server)
    wait_ended(db_url, queue_runs(alice, 1, "warm up"), 10)
    [(old_pid,)] = sql(db_url, LISTENER)
    with listener_kept_down(db_url):
        runs = queue_runs(alice, 10, "while the listener is down")
    wait_ended(db_url, runs, 15)
    assert not_exactly_once(db_url, runs) == []
    health = wait_for(
        lambda: (h := httpx.get(f"{server.url}/health").json())["listener"]["connected"] and h,
        5,
        "listener back",
    )
    assert health["listener"]["reconnects"] >= 1
    assert [r["pid"] for r in sql(db_url, LISTENER)] != [old_pid]


def test_runs_complete_by_polling_without_the_notify_triggers(db_url: str, fleet: Fleet) -> None:
    """No NOTIFY at all (triggers dropped) and no express lane: ten queued runs and a waiting
    chat reach their workers, and the chat its answer, only by polling every P; each completes
    once; a closed thread is archived the same way."""
    sql(db_url, "DROP TRIGGER runs_notify ON maas.pipeline_runs")
    sql(db_url, "DROP TRIGGER archive_jobs_notify ON maas.archive_jobs")
    server = fleet.start(fault_env(db_url, MAAS_EXPRESS_CONCURRENCY="0"))
    alice = new_user(server)
    runs = queue_runs(alice, 10, "nobody rings for run")
    body = alice.post("/v1/chat", json={"message": "Nobody rings, my cat is Tom."}).json()
    assert body["status"] == "COMPLETED" and "offline" in body["answer"]
    wait_ended(db_url, runs, 20)
    assert not_exactly_once(db_url, [*runs, body["run_id"]], events=False) == []
    assert alice.post(f"/v1/threads/{body['thread_id']}/close").status_code == 200

    # The other runs' turns are archived too (per turn): wait for this thread's fact itself.
    def told() -> bool:
        return any("Tom" in m["text"] for m in alice.get("/v1/memories").json()["memories"])

    wait_for(told, 10, "archived")


def timed(call: Any) -> tuple[int, float]:
    started = time.monotonic()
    try:
        code = call().status_code
    except httpx.HTTPError as exc:  # a hang shows up as a client timeout
        code = -1
        print(exc)
    return code, time.monotonic() - started


def test_postgres_restart_mid_pipeline(
    own_postgres: OwnPostgres, fleet: Fleet, scripted: ScriptedLLM
) -> None:
    for _ in range(4):
        scripted.push(Reply(delay_s=1.0), stage="responder")
    env = fault_env(
        own_postgres.uri,
        MAAS_MIGRATE_ON_START="true",
        MAAS_DB_TIMEOUT_S="1",
        **llm_env(scripted.base_url),
    )
    server = fleet.start(env)
    alice = new_user(server)
    runs = [
        alice.post("/v1/chat?wait=false", json={"message": f"message {i}"}).json()["run_id"]
        for i in range(4)
    ]
    wait_status(alice, runs[0], {"RESPONDING"})

    own_postgres.stop()
    deadline = 1 + 2.0  # db_timeout_s + slack: an answer, never a hang
    down = [
        timed(lambda: httpx.get(f"{server.url}/health", timeout=10)),
        timed(lambda: alice.post("/v1/chat", json={"message": "while down"}, timeout=10)),
        timed(lambda: alice.get(f"/v1/runs/{runs[0]}", timeout=10)),
        timed(lambda: alice.get("/v1/memories", timeout=10)),
    ]
    assert [code for code, _ in down] == [503] * 4, down
    assert max(took for _, took in down) <= deadline, down
    time.sleep(1.0)
    own_postgres.start()

    for run_id in runs:  # every run ends, no restart of the service needed
        run = wait_status(alice, run_id, {"COMPLETED", "FAILED"}, timeout=LEASE_S + 20)
        assert run["status"] == "COMPLETED", run
    after = alice.post("/v1/chat", json={"message": "after the restart"}).json()
    assert after["status"] == "COMPLETED"
    health = wait_for(
        lambda: (h := httpx.get(f"{server.url}/health").json())["status"] == "ok" and h,
        10,
        "healthy again",
    )
    assert health["listener"]["reconnects"] >= 1
    threads = {alice.get(f"/v1/runs/{r}").json()["thread_id"] for r in runs}
    for thread_id in threads:
        roles = [m["role"] for m in alice.get(f"/v1/threads/{thread_id}").json()["messages"]]
        assert roles == ["user", "assistant"]


async def _submit_dialogs(urls: list[str], key: str, threads: int, per_thread: int) -> None:
    clients = [
        httpx.AsyncClient(base_url=u, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        for u in urls
    ]
    servers = cycle(clients)

    async def dialog(n: int) -> None:
        thread_id = None
        for i in range(per_thread):
            body = {"message": f"dialog {n} message {i}", "thread_id": thread_id}
            resp = await next(servers).post("/v1/chat?wait=false", json=body)
            assert resp.status_code == 202, resp.text
            thread_id = resp.json()["thread_id"]

    try:
        await asyncio.gather(*[dialog(n) for n in range(threads)])
    finally:
        for client in clients:
            await client.aclose()


def test_three_processes_race_on_200_runs(db_url: str, fleet: Fleet) -> None:
    env = fault_env(db_url, MAAS_POLL_S="0.2")
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        servers = list(pool.map(lambda n: fleet.start(env, f"racer{n}"), range(3)))
    key = new_user(servers[0]).headers["Authorization"].split()[1]
    owners: set[str] = set()  # claimed_by is the process's worker id: who is working now
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            rows = sql(db_url, "SELECT DISTINCT claimed_by FROM maas.pipeline_runs")
            owners.update(r["claimed_by"] for r in rows if r["claimed_by"])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        asyncio.run(_submit_dialogs([s.url for s in servers], key, threads=40, per_thread=5))

        def finished() -> bool:
            [(left,)] = sql(
                db_url, "SELECT count(*) FROM maas.pipeline_runs WHERE status <> 'COMPLETED'"
            )
            return bool(left == 0)

        wait_for(finished, 90, "all 200 runs completed")
    finally:
        done.set()
        watcher.join(timeout=5)
    workers = {httpx.get(f"{s.url}/health").json()["process"]["worker_id"] for s in servers}
    assert owners <= workers and len(owners) >= 2, owners  # the work was shared
    events = sql(
        db_url,
        "SELECT run_id, array_agg(status::text ORDER BY id) AS s FROM maas.run_events"
        " GROUP BY run_id",
    )
    odd = [(str(e["run_id"]), list(e["s"])) for e in events if list(e["s"]) != ALL]
    assert len(events) == 200 and not odd, odd[:3]
    per_stage = sql(
        db_url,
        "SELECT run_id, stage, count(*) AS n FROM maas.llm_calls WHERE run_id IS NOT NULL"
        " GROUP BY run_id, stage",  # the archivist's calls (per-turn jobs) belong to no run
    )
    assert len(per_stage) == 400 and {r["n"] for r in per_stage} == {1}
    [(deadlocks,)] = sql(
        db_url, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    )
    assert deadlocks == 0
    out_of_order = sql(
        db_url,
        """
        SELECT r.thread_id FROM maas.pipeline_runs r
        JOIN maas.messages a ON a.run_id = r.id AND a.role = 'assistant'
        GROUP BY r.thread_id
        HAVING array_agg(a.id ORDER BY r.created_at) <> array_agg(a.id ORDER BY a.id)
            OR array_agg(r.completed_at ORDER BY r.created_at)
               <> array_agg(r.completed_at ORDER BY r.completed_at)
        """,
    )
    assert out_of_order == []
    [(answers,)] = sql(db_url, "SELECT count(*) FROM maas.messages WHERE role = 'assistant'")
    assert answers == 200
