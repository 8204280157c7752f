"""4-5. SIGTERM drains within the grace period; SIGSTOP longer than L loses the lease."""

from __future__ import annotations

import concurrent.futures
import signal
import time
from typing import Any

import httpx

from bench.scripted_llm import Reply, ScriptedLLM, default_content
from tests.e2e.conftest import Server
from tests.faults.conftest import (
    GRACE_S,
    LEASE_S,
    POLL_S,
    Fleet,
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


def by_message(stage: str | None, body: dict[str, Any]) -> Reply:
    """Responder replies take 1 s for 'slow' messages and 30 s for 'stuck' ones."""
    content = default_content(stage, body)
    text = str(body.get("messages", [{}])[-1].get("content", ""))
    if stage == "responder" and "stuck" in text:
        return Reply(content=content, delay_s=30)
    if stage == "responder" and "slow" in text:
        return Reply(content=content, delay_s=1.0)
    return Reply(content=content)


def run_row(dsn: str, run_id: str) -> Any:
    return sql(dsn, "SELECT * FROM maas.pipeline_runs WHERE id = $1::text::uuid", run_id)[0]


def test_sigterm_finishes_or_releases_in_flight_work_within_grace(
    db_url: str, fleet: Fleet, scripted: ScriptedLLM
) -> None:
    scripted.set_handler(by_message)
    env = fault_env(db_url, **llm_env(scripted.base_url))
    server = fleet.start(env)
    alice = new_user(server)
    slow = alice.post("/v1/chat?wait=false", json={"message": "a slow one"}).json()["run_id"]
    stuck = alice.post("/v1/chat?wait=false", json={"message": "a stuck one"}).json()["run_id"]
    more = queue_runs(alice, 8, "one more slow one")  # in flight or queued at the signal
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(alice.post, "/v1/chat", json={"message": "another stuck one"})
        for run_id in (slow, stuck):
            wait_status(alice, run_id, {"RESPONDING"})
        assert server.proc is not None
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "draining:" in server.log.read_text(), 10, "the drain began")
        owner = run_row(db_url, slow)
        late = sql(
            db_url,
            "INSERT INTO maas.pipeline_runs (user_id, thread_id, query, mode)"
            " VALUES ($1, $2, 'late', 'llm') RETURNING id",
            owner["user_id"],
            owner["thread_id"],
        )[0]["id"]
        server.proc.wait(timeout=GRACE_S + 10)
        took = time.monotonic() - started
        answered = waiting.result(timeout=1)

    assert took <= GRACE_S + 2.0, f"shutdown took {took:.1f}s"
    assert answered.status_code == 202  # an answer before the grace ended, not a dropped socket
    assert run_row(db_url, slow)["status"] == "COMPLETED"  # in flight, finished in time
    released = run_row(db_url, stuck)
    assert released["status"] == "READY" and released["lease_token"] is None
    assert released["attempts"] == 0 and released["error"] is None  # released, not failed
    assert sql(db_url, "SELECT status::text FROM maas.pipeline_runs WHERE id = $1", late) == [
        ("NEW",)
    ]

    scripted.set_handler(None)
    server.start()  # everything left is picked up by the next process, and done once
    runs = [slow, stuck, answered.json()["run_id"], str(late), *more]
    wait_ended(db_url, runs, 30)
    assert not_exactly_once(db_url, runs) == []


def owner_of(servers: list[Server], dsn: str, run_id: str) -> Server:
    worker = run_row(dsn, run_id)["claimed_by"]
    for server in servers:
        if httpx.get(f"{server.url}/health").json()["process"]["worker_id"] == worker:
            return server
    raise AssertionError(f"no server owns {worker}")


def test_sigstop_longer_than_lease_then_late_write_is_rejected(
    db_url: str, fleet: Fleet, scripted: ScriptedLLM
) -> None:
    scripted.push(Reply(content="LATE ANSWER", delay_s=2 * LEASE_S), stage="responder")
    scripted.push(Reply(content="ON-TIME ANSWER"), stage="responder")
    env = fault_env(db_url, **llm_env(scripted.base_url))
    servers = [fleet.start(env, "one"), fleet.start(env, "two")]
    alice = new_user(servers[0])
    run_id = alice.post("/v1/chat?wait=false", json={"message": "hello"}).json()["run_id"]
    wait_status(alice, run_id, {"RESPONDING"})
    paused = owner_of(servers, db_url, run_id)
    other = next(s for s in servers if s is not paused)
    assert paused.proc is not None
    paused.proc.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        watcher = other.client(alice.headers["Authorization"].split()[1])
        run = wait_status(watcher, run_id, {"COMPLETED", "FAILED"}, timeout=LEASE_S + 10)
        assert time.monotonic() - stopped_at <= LEASE_S + 2 * POLL_S + 2.0
    finally:
        paused.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: "lease lost" in paused.log.read_text(), 10, "paused worker gives up")

    assert run["status"] == "COMPLETED" and run["answer"] == "ON-TIME ANSWER"
    statuses = [e["status"] for e in run["history"]]
    assert statuses.count("COMPLETED") == 1 and "lease expired" in run["history"][6]["error"]
    thread = watcher.get(f"/v1/threads/{run['thread_id']}").json()
    assert [m["content"] for m in thread["messages"] if m["role"] == "assistant"] == [
        "ON-TIME ANSWER"
    ]
    assert len(scripted.requests_for("responder")) == 2
    assert httpx.get(f"{paused.url}/health").status_code == 200  # it lives on
    again = watcher.get(f"/v1/runs/{run_id}").json()
    assert again["answer"] == "ON-TIME ANSWER" and again["history"] == run["history"]
