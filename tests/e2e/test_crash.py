"""SIGKILL the service mid-run; after a restart the run completes exactly once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.scripted_llm import Reply, ScriptedLLM
from tests.e2e.conftest import Server


def wait_status(client: httpx.Client, run_id: str, wanted: set[str], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/v1/runs/{run_id}").json()
        if run["status"] in wanted:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {wanted}")


@pytest.mark.slow
def test_sigkill_mid_responding_completes_exactly_once(
    tmp_path: Path, servers: list[Server], scripted: ScriptedLLM
) -> None:
    scripted.push(Reply(delay_s=60), stage="responder")  # the first answer never arrives
    env = {
        "MAAS_LLM_BASE_URL": scripted.base_url,
        "MAAS_LLM_API_KEY": "sk-test",
        "MAAS_LEASE_S": "2",
        "MAAS_POLL_S": "0.3",
    }
    server = Server(tmp_path / "data", env)
    servers.append(server.start())
    demo = server.client(server.credentials()["demo_user_key"])
    run_id = demo.post("/v1/chat?wait=false", json={"message": "Remember my bike is red"}).json()[
        "run_id"
    ]
    wait_status(demo, run_id, {"RESPONDING"})
    # RESPONDING is committed before the model is called: kill only once the slow reply has been
    # taken, else the next attempt would get it (a race the test lost about 1 run in 20)
    deadline = time.monotonic() + 10
    while scripted.pending("responder") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert scripted.requests_for("responder"), "the responder never called the model"
    server.kill()  # SIGKILL: no shutdown code runs, the lease stays on the row

    servers.append(server.start())
    run = wait_status(demo, run_id, {"COMPLETED", "FAILED"})
    assert run["status"] == "COMPLETED"
    statuses = [e["status"] for e in run["history"]]
    assert statuses == [
        "NEW",
        "ANALYZING",
        "ANALYZED",
        "ASSEMBLING",
        "READY",
        "RESPONDING",
        "READY",
        "RESPONDING",
        "COMPLETED",
    ]
    assert "lease expired" in run["history"][6]["error"]
    thread = demo.get(f"/v1/threads/{run['thread_id']}").json()
    answers = [m for m in thread["messages"] if m["role"] == "assistant"]
    assert len(answers) == 1 and answers[0]["content"] == run["answer"]
    assert len(scripted.requests_for("responder")) == 2
