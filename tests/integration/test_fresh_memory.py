"""Fresh memory (issue 17): each completed turn is archived at once, off the request path, and a
later close, a replayed request or a second pass creates nothing twice."""

from __future__ import annotations

from typing import Any

import httpx

from bench.scripted_llm import Reply, ScriptedLLM
from tests.helpers import close_and_archive, eventually

FACT = "My cat Miso is allergic to chicken."


async def memories(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = (await client.get("/v1/memories?limit=500")).json()["memories"]
    return listed


async def archived(client: httpx.AsyncClient, thread_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        thread: dict[str, Any] = (await client.get(f"/v1/threads/{thread_id}")).json()
        assert "messages" in thread, thread
        last = max(m["id"] for m in thread["messages"])
        return thread if thread["archived_upto"] >= last else None

    found: dict[str, Any] = await eventually(done)
    return found


async def jobs(api: Any) -> list[Any]:
    pool = api.service.runtime.pool
    return list(await pool.fetch("SELECT * FROM maas.archive_jobs ORDER BY id"))


async def test_a_fact_told_in_one_thread_is_used_in_another_without_a_close(make_api: Any) -> None:
    async with make_api(rate_limit_per_min=0) as api:
        alice = await api.user("alice")
        told = (await alice.post("/v1/chat", json={"message": FACT})).json()
        thread = await archived(alice, told["thread_id"])
        source = next(m["id"] for m in thread["messages"] if m["role"] == "user")
        assert thread["closed_at"] is None
        stored = await memories(alice)
        assert [m["text"] for m in stored] == [f"User: {FACT}"]
        assert stored[0]["source_message_ids"] == [source]
        assert stored[0]["source_thread_id"] == told["thread_id"]

        asked = await alice.post("/v1/chat", json={"message": "What is my cat allergic to?"})
        answer = asked.json()
        assert answer["thread_id"] != told["thread_id"]
        assert "chicken" in answer["answer"]
        assert answer["memories_used"][0]["source_thread_id"] == told["thread_id"]
        [job] = [j for j in await jobs(api) if str(j["thread_id"]) == told["thread_id"]]
        assert job["reason"] == "turn" and job["status"] == "done"


async def test_closing_after_per_turn_archiving_stores_no_second_copy(make_api: Any) -> None:
    async with make_api(rate_limit_per_min=0) as api:
        alice = await api.user("alice")
        first = (await alice.post("/v1/chat", json={"message": FACT})).json()
        thread_id = first["thread_id"]
        body = {"message": "My sister Maria teaches piano in Berlin.", "thread_id": thread_id}
        await alice.post("/v1/chat", json=body)
        await archived(alice, thread_id)
        before = sorted((m["id"], tuple(m["source_message_ids"])) for m in await memories(alice))
        assert len(before) == 2
        await close_and_archive(alice, thread_id)
        after = sorted((m["id"], tuple(m["source_message_ids"])) for m in await memories(alice))
        assert after == before
        assert [j["reason"] for j in await jobs(api)] == ["turn", "turn"]  # the close had none


async def test_a_replayed_request_archives_its_turn_once(make_api: Any) -> None:
    async with make_api(rate_limit_per_min=0) as api:
        alice = await api.user("alice")
        headers = {"Idempotency-Key": "once"}
        first = (await alice.post("/v1/chat", json={"message": FACT}, headers=headers)).json()
        await archived(alice, first["thread_id"])
        again = (await alice.post("/v1/chat", json={"message": FACT}, headers=headers)).json()
        assert again["run_id"] == first["run_id"]
        # The same statement told again in a new thread merges into the memory (provenance grows).
        other = (await alice.post("/v1/chat", json={"message": FACT})).json()
        await archived(alice, other["thread_id"])
        [memory] = await memories(alice)
        assert len(memory["source_message_ids"]) == 2
        assert len(await jobs(api)) == 2


async def test_llm_mode_batches_turns_into_one_extraction(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    llm = {"llm_base_url": scripted.base_url, "llm_api_key": "sk-test", "llm_model": "scripted"}
    async with make_api(turn_batch_turns=2, turn_batch_wait_s=3600, **llm) as api:
        alice = await api.user("alice")
        first = (await alice.post("/v1/chat", json={"message": FACT})).json()
        [waiting] = await jobs(api)
        assert waiting["reason"] == "turn" and waiting["status"] == "queued"
        body = {"message": "My sister Maria teaches piano.", "thread_id": first["thread_id"]}
        scripted.push(Reply(content='{"facts": []}'), stage="archivist")
        await alice.post("/v1/chat", json=body)
        await archived(alice, first["thread_id"])
        [job] = await jobs(api)
        assert job["id"] == waiting["id"] and job["status"] == "done"
        assert len(scripted.requests_for("archivist")) == 1  # two turns, one extraction
