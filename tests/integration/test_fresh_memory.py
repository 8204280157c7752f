"""Fresh memory (issue 17): each completed turn is archived at once, off the request path, and a
later close, a replayed request or a second pass creates nothing twice."""

from __future__ import annotations

import json
from typing import Any

import httpx

from bench.scripted_llm import Reply, ScriptedLLM
from tests.helpers import eventually

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


async def passed(api: Any, reason: str = "closed") -> Any:
    """The thread's dialog pass (migration 0038), once it is done."""

    async def done() -> Any:
        found = [j for j in await jobs(api) if j["reason"] == reason]
        return found[0] if found and found[0]["status"] == "done" else None

    return await eventually(done)


async def stored_rows(api: Any) -> list[tuple[str, bool, tuple[int, ...]]]:
    """Every memory row (superseded ones too): text, still valid, provenance."""
    rows = await api.service.runtime.pool.fetch(
        "SELECT text, valid_to IS NULL AS valid, source_message_ids FROM maas.memories ORDER BY id"
    )
    return [(r["text"], r["valid"], tuple(r["source_message_ids"])) for r in rows]


async def test_closing_after_per_turn_archiving_stores_no_second_copy(make_api: Any) -> None:
    """The close runs its dialog pass over the thread's turns; what per-turn archiving stored is
    not stored again, the changed value stays superseded, a deleted memory stays deleted."""
    async with make_api(rate_limit_per_min=0) as api:
        alice = await api.user("alice")
        first = (await alice.post("/v1/chat", json={"message": "I live in Porto."})).json()
        thread_id = first["thread_id"]
        for said in (FACT, "My sister Maria teaches piano in Berlin.", "I moved to Lisbon."):
            await alice.post("/v1/chat", json={"message": said, "thread_id": thread_id})
        await archived(alice, thread_id)
        [maria] = [m for m in await memories(alice) if "Maria" in m["text"]]
        assert (await alice.delete(f"/v1/memories/{maria['id']}")).status_code == 200
        before = await stored_rows(api)
        assert [(text, valid) for text, valid, _ in before] == [
            ("User: I live in Porto.", False),  # superseded by the move, per turn
            (f"User: {FACT}", True),
            ("User: I moved to Lisbon.", True),
        ]
        await alice.post(f"/v1/threads/{thread_id}/close")
        job = await passed(api)
        assert job["scope"] == "dialog" and job["memories_created"] == 0
        assert await stored_rows(api) == before
        assert [j["reason"] for j in await jobs(api)] == ["turn"] * 4 + ["closed"]
        assert (await alice.post(f"/v1/threads/{thread_id}/close")).json()["archive_job_id"] is None


async def test_the_close_pass_consolidates_the_turns_it_reads_together(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    """LLM mode, each turn archived alone; the close's pass gives the model both turns at once.
    A fact it draws from both is stored with both as provenance, a changed home it sees across
    them supersedes the old one, and a fact of one turn that per-turn archiving stored (said
    again by the pass) is not stored twice."""
    llm = {"llm_base_url": scripted.base_url, "llm_api_key": "sk-test", "llm_model": "scripted"}
    async with make_api(turn_batch_turns=1, **llm) as api:
        alice = await api.user("alice")
        said = [
            "I live in Porto with my cat Miso.",
            "I moved to Lisbon. She is allergic to chicken.",
        ]
        home = {"text": "Alice lives in Porto", "slot": "home", "source": [1]}
        scripted.push(Reply(content=json.dumps({"facts": [home]})), stage="archivist")
        thread_id = (await alice.post("/v1/chat", json={"message": said[0]})).json()["thread_id"]
        await archived(alice, thread_id)
        await alice.post("/v1/chat", json={"message": said[1], "thread_id": thread_id})
        per_turn = await archived(alice, thread_id)
        u1, u2 = [m["id"] for m in per_turn["messages"] if m["role"] == "user"]
        assert await stored_rows(api) == [
            ("Alice lives in Porto", True, (u1,)),
            ("I moved to Lisbon.", True, (u2,)),
            ("She is allergic to chicken.", True, (u2,)),
        ]
        facts = [
            {"text": "I moved to Lisbon.", "source": [3]},  # turn 2's own: stored already
            {"text": "Alice moved from Porto to Lisbon", "slot": "home", "source": [1, 3]},
            {"text": "Alice's cat Miso is allergic to chicken", "source": [1, 3]},
        ]
        scripted.push(Reply(content=json.dumps({"facts": facts})), stage="archivist")
        await alice.post(f"/v1/threads/{thread_id}/close")
        job = await passed(api)
        transcript = scripted.requests_for("archivist")[-1].body["messages"][-1]["content"]
        assert said[0] in transcript and said[1] in transcript  # the whole thread, together
        assert await stored_rows(api) == [
            ("Alice lives in Porto", False, (u1,)),
            ("I moved to Lisbon.", True, (u2,)),
            ("She is allergic to chicken.", True, (u2,)),
            ("Alice moved from Porto to Lisbon", True, (u1, u2)),
            ("Alice's cat Miso is allergic to chicken", True, (u1, u2)),
        ]
        assert job["memories_created"] == 2


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
