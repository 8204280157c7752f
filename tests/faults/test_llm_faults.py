"""9-10. A poison run, and the LLM misbehaving in every way the scripted server can.

The API never answers 500, attempts stay bounded, and no partial memory is written.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from bench.scripted_llm import Reply, ScriptedLLM, default_content
from tests.helpers import close_and_archive

ATTEMPTS = 3


def llm(scripted: ScriptedLLM, **extra: Any) -> dict[str, Any]:
    return {
        "llm_base_url": scripted.base_url,
        "llm_api_key": "sk-test",
        "llm_model": "scripted",
        "llm_timeout_s": 2.0,
        "llm_max_retries": 1,
        "max_attempts": ATTEMPTS,
        "backoff_base_s": 0.2,
        "backoff_max_s": 1.0,
        **extra,
    }


async def calls(client: httpx.AsyncClient, run_id: str, stage: str) -> list[dict[str, Any]]:
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    return [c for c in run["llm_calls"] if c["stage"] == stage]


async def chat(client: httpx.AsyncClient, message: str) -> dict[str, Any]:
    resp = await client.post("/v1/chat", json={"message": message})
    assert resp.status_code == 200, resp.text  # never a 500, whatever the LLM did
    body: dict[str, Any] = resp.json()
    return body


def poison(stage: str | None, body: dict[str, Any]) -> Reply:
    text = str(body.get("messages", [{}])[-1].get("content", ""))
    if stage == "analyzer" and "POISON" in text:
        return Reply(status=500, content="boom on poison")
    return Reply(content=default_content(stage, body))


async def test_poison_run_fails_after_bounded_backed_off_attempts_others_unaffected(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    scripted.set_handler(poison)
    async with make_api(**llm(scripted)) as api:
        alice = await api.user()
        bad, *good = await asyncio.gather(
            chat(alice, "POISON pill"), *[chat(alice, f"ordinary message {i}") for i in range(5)]
        )
        assert [g["status"] for g in good] == ["COMPLETED"] * 5
        assert bad["status"] == "FAILED" and "HTTP 500" in bad["error"]
        run = (await alice.get(f"/v1/runs/{bad['run_id']}")).json()
        history = run["history"]
        assert [e["status"] for e in history] == ["NEW", "ANALYZING"] * ATTEMPTS + ["FAILED"]
        starts = [datetime.fromisoformat(e["at"]) for e in history if e["status"] == "ANALYZING"]
        gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
        assert gaps[0] >= 0.2 * 0.8 and gaps[1] >= 0.4 * 0.8  # exponential backoff, jittered
        assert len(await calls(alice, bad["run_id"], "analyzer")) == ATTEMPTS * 2
        assert history[-1]["error"] == bad["error"]  # the last error is kept


async def test_rate_limit_retry_after_is_respected_and_bounded(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    scripted.push(Reply(status=429, headers={"Retry-After": "1"}), stage="responder")
    async with make_api(**llm(scripted, llm_retry_after_cap_s=1.5)) as api:
        alice = await api.user()
        once = await chat(alice, "first message")
        assert once["status"] == "COMPLETED" and once["timings_ms"]["responder"] >= 900
        scripted.set_handler(lambda stage, body: Reply(status=429, headers={"Retry-After": "60"}))
        started = time.monotonic()
        always = await chat(alice, "second message")
        took = time.monotonic() - started
    assert always["status"] == "FAILED" and "429" in always["error"]
    # Bounded: A attempts x (1 call + 1 retry), each wait capped at 1.5 s despite Retry-After: 60.
    assert len(scripted.requests_for("analyzer")) == 1 + ATTEMPTS * 2
    assert took < ATTEMPTS * 1.5 + 3


async def test_burst_of_500s_is_retried_through(make_api: Any, scripted: ScriptedLLM) -> None:
    for _ in range(3):
        scripted.push(Reply(status=500), stage="responder")
    async with make_api(**llm(scripted)) as api:
        alice = await api.user()
        body = await chat(alice, "a burst of errors")
        assert body["status"] == "COMPLETED"
        outcomes = [c["outcome"] for c in await calls(alice, body["run_id"], "responder")]
        assert outcomes == ["error", "error", "error", "ok"]
        thread = (await alice.get(f"/v1/threads/{body['thread_id']}")).json()
        assert [m["role"] for m in thread["messages"]] == ["user", "assistant"]


async def test_hang_is_cut_by_the_configured_timeout(make_api: Any, scripted: ScriptedLLM) -> None:
    scripted.push(Reply(hang=True), stage="analyzer")
    async with make_api(**llm(scripted, llm_timeout_s=0.5)) as api:
        alice = await api.user()
        started = time.monotonic()
        body = await chat(alice, "will it hang")
        assert body["status"] == "COMPLETED" and time.monotonic() - started < 4
        outcomes = [c["outcome"] for c in await calls(alice, body["run_id"], "analyzer")]
        assert outcomes == ["timeout", "ok"]


async def test_trickle_that_never_ends_is_stopped_by_the_stage_deadline(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    scripted.push(Reply(trickle_s=0.05), stage="responder")
    settings = llm(scripted, llm_timeout_s=30.0, stage_deadline_s=1.0)
    async with make_api(**settings) as api:
        alice = await api.user()
        started = time.monotonic()
        body = await chat(alice, "a trickle of bytes")
        assert body["status"] == "COMPLETED" and time.monotonic() - started < 6
        responder = await calls(alice, body["run_id"], "responder")
        assert [c["outcome"] for c in responder] == ["timeout", "ok"]
        assert 800 <= responder[0]["ms"] <= 2500  # the 1 s deadline, not the 30 s timeout


async def test_cut_response_is_retried(make_api: Any, scripted: ScriptedLLM) -> None:
    scripted.push(Reply(cut_body=True), stage="analyzer")
    scripted.push(Reply(cut_body=True), stage="archivist")
    async with make_api(**llm(scripted)) as api:
        alice = await api.user()
        body = await chat(alice, "My cat is called Tom and she is grey.")
        assert body["status"] == "COMPLETED"
        outcomes = [c["outcome"] for c in await calls(alice, body["run_id"], "analyzer")]
        assert outcomes == ["error", "ok"]
        memories = await close_and_archive(alice, body["thread_id"])
        assert [m["text"] for m in memories] == ["My cat is called Tom and she is grey."]


async def test_unauthorized_llm_is_not_retried(make_api: Any, scripted: ScriptedLLM) -> None:
    scripted.set_handler(lambda stage, body: Reply(status=401, content="bad key"))
    async with make_api(**llm(scripted, llm_max_retries=3)) as api:
        alice = await api.user()
        body = await chat(alice, "who am I")
        assert body["status"] == "FAILED" and "HTTP 401" in body["error"]
        analyzer = await calls(alice, body["run_id"], "analyzer")
        assert len(analyzer) == 1  # refused credentials: neither the client nor the runner retries
        run = (await alice.get(f"/v1/runs/{body['run_id']}")).json()
        assert [e["status"] for e in run["history"]] == ["NEW", "ANALYZING", "FAILED"]


@pytest.mark.parametrize(
    "reply",
    [Reply(content="{not json"), Reply(status=500), Reply(cut_body=True)],
    ids=["malformed", "500", "cut"],
)
async def test_failed_archivist_writes_no_partial_memory(
    make_api: Any, scripted: ScriptedLLM, reply: Reply
) -> None:
    async with make_api(**llm(scripted)) as api:
        alice = await api.user()
        body = await chat(alice, "I grow tomatoes on my balcony. My brother lives in Oslo.")
        scripted.set_handler(lambda stage, b: reply if stage == "archivist" else Reply())
        assert (await alice.post(f"/v1/threads/{body['thread_id']}/close")).status_code == 200
        jobs = "SELECT status, attempts, error FROM maas.archive_jobs"
        pool = api.service.runtime.pool
        deadline = time.monotonic() + 15
        while (job := await pool.fetchrow(jobs))["status"] != "failed":
            assert time.monotonic() < deadline, dict(job)
            await asyncio.sleep(0.05)
        assert job["attempts"] == ATTEMPTS and job["error"]
        assert (await alice.get("/v1/memories")).json()["memories"] == []
        assert await pool.fetchval("SELECT count(*) FROM maas.memories") == 0
