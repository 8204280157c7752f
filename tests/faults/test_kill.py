"""1-2. SIGKILL mid-stage, and retried requests with an Idempotency-Key."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.scripted_llm import Reply, ScriptedLLM, default_content
from tests.faults.conftest import (
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

ALL = ["NEW", "ANALYZING", "ANALYZED", "ASSEMBLING", "READY", "RESPONDING", "COMPLETED"]


@pytest.mark.parametrize(
    ("stage", "status"), [("analyzer", "ANALYZING"), ("responder", "RESPONDING")]
)
def test_sigkill_mid_stage_completes_exactly_once_after_restart(
    db_url: str, fleet: Fleet, scripted: ScriptedLLM, stage: str, status: str
) -> None:
    scripted.push(Reply(delay_s=30), stage=stage)  # the killed process never gets this reply
    env = fault_env(db_url, **llm_env(scripted.base_url))
    server = fleet.start(env)
    alice = new_user(server)
    sent = alice.post("/v1/chat?wait=false", json={"message": "My bike is red and very fast."})
    run_id = sent.json()["run_id"]
    wait_status(alice, run_id, {status})
    # the status is committed before the model is called: kill only once the slow reply has been
    # taken, else the next attempt would get it
    deadline = time.monotonic() + 10
    while scripted.pending(stage) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert scripted.requests_for(stage), f"the {stage} never called the model"
    server.kill()  # SIGKILL: no shutdown code runs, the lease stays on the row

    server.start()
    ready = time.monotonic()
    run = wait_status(alice, run_id, {"COMPLETED", "FAILED"}, timeout=LEASE_S + 10)
    assert time.monotonic() - ready <= LEASE_S + POLL_S + 1.5
    assert run["status"] == "COMPLETED"
    history = [e["status"] for e in run["history"]]
    i = ALL.index(status)
    assert history == ALL[: i + 1] + [ALL[i - 1]] + ALL[i:]
    assert "lease expired" in run["history"][i + 1]["error"]
    assert len(scripted.requests_for(stage)) == 2
    assert [c["stage"] for c in run["llm_calls"] if c["outcome"] == "ok"] == [
        "analyzer",
        "responder",
    ]

    thread = alice.get(f"/v1/threads/{run['thread_id']}").json()
    assert [m["role"] for m in thread["messages"]] == ["user", "assistant"]
    assert thread["messages"][1]["content"] == run["answer"]
    assert alice.post(f"/v1/threads/{run['thread_id']}/close").status_code == 200
    memories = wait_for(
        lambda: alice.get("/v1/memories").json()["memories"], 10, "archivist memories"
    )
    assert [m["text"] for m in memories] == ["My bike is red and very fast."]
    dupes = sql(
        db_url, "SELECT fact_key FROM maas.memories GROUP BY user_id, fact_key HAVING count(*) > 1"
    )
    assert dupes == []


WORKING = (
    "SELECT id::text FROM maas.pipeline_runs"
    " WHERE status IN ('ANALYZING', 'ASSEMBLING', 'RESPONDING')"
)


def slow(stage: str | None, body: dict[str, Any]) -> Reply:
    """Every call takes a while, so many runs are mid-stage at any moment."""
    return Reply(content=default_content(stage, body), delay_s=0.6)


def test_sigkill_with_many_runs_in_flight_loses_and_duplicates_none(
    db_url: str, fleet: Fleet, scripted: ScriptedLLM
) -> None:
    """Twenty queued runs, several mid-stage (leases held, model calls pending) and the rest
    queued, when the process is killed: after a restart each of the twenty completes exactly
    once (one answer, one COMPLETED), and each run that was mid-stage was taken over after its
    lease expired."""
    scripted.set_handler(slow)
    server = fleet.start(fault_env(db_url, **llm_env(scripted.base_url)))
    alice = new_user(server)
    runs = queue_runs(alice, 20, "My bike number is")
    wait_for(lambda: len(sql(db_url, WORKING)) >= 5, 20, "many runs mid-stage")
    server.kill()  # SIGKILL: leases stay on the rows, the queued runs stay queued
    interrupted = [r["id"] for r in sql(db_url, WORKING)]
    assert len(interrupted) >= 3

    scripted.set_handler(None)
    server.start()
    wait_ended(db_url, runs, LEASE_S + 30)
    assert not_exactly_once(db_url, runs) == []
    taken_over = sql(
        db_url,
        "SELECT DISTINCT run_id::text FROM maas.run_events WHERE error LIKE 'lease expired%'",
    )
    assert set(interrupted) <= {r["run_id"] for r in taken_over}


def test_retried_chat_with_idempotency_key_returns_the_same_run(
    db_url: str, fleet: Fleet, scripted: ScriptedLLM, tmp_path: Path
) -> None:
    scripted.push(Reply(content="The one answer.", delay_s=1.0), stage="responder")
    server = fleet.start(fault_env(db_url, **llm_env(scripted.base_url)))
    alice = new_user(server)
    body = {"message": "Please remember that I like tea."}
    headers = {"Idempotency-Key": "client-msg-1"}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up; the run goes on
        alice.post("/v1/chat", json=body, headers=headers, timeout=0.3)

    def again() -> httpx.Response:
        return alice.post("/v1/chat", json=body, headers=headers)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        replies = [f.result() for f in [pool.submit(again) for _ in range(4)]]
    assert {r.status_code for r in replies} == {200}
    assert len({r.json()["run_id"] for r in replies}) == 1
    assert {r.json()["answer"] for r in replies} == {"The one answer."}
    thread = alice.get(f"/v1/threads/{replies[0].json()['thread_id']}").json()
    assert [m["role"] for m in thread["messages"]] == ["user", "assistant"]
    assert sql(db_url, "SELECT count(*) FROM maas.pipeline_runs")[0][0] == 1
    assert len(scripted.requests_for("responder")) == 1
