"""The chat pipeline end to end on real Postgres, in offline mode."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from tests.helpers import close_and_archive, eventually

ALL = ["NEW", "ANALYZING", "ANALYZED", "ASSEMBLING", "READY", "RESPONDING", "COMPLETED"]


async def test_chat_completes_with_all_statuses_and_logged_calls(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user("alice")
        resp = await alice.post("/v1/chat", json={"message": "I adopted a cat named Miso."})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["status"] == "COMPLETED"
        assert body["mode"] == "offline"
        assert body["answer"].startswith("[offline mode")
        assert set(body["timings_ms"]) >= {"analyzer", "assembler", "responder", "total"}

        run = (await alice.get(f"/v1/runs/{body['run_id']}")).json()
        assert [e["status"] for e in run["history"]] == ALL
        stamps = [run[f"{status.lower()}_at"] for status in ALL[1:]]
        assert None not in stamps and stamps == sorted(stamps)
        # the express lane passes ANALYZED and READY in one row version each (migration 0024):
        # the same events as a run the workers drive, attempt for attempt
        queued = await alice.post("/v1/chat?wait=false", json={"message": "And a dog, Rex."})
        await alice.get(f"/v1/runs/{queued.json()['run_id']}/events")  # returns once it ended
        worked = (await alice.get(f"/v1/runs/{queued.json()['run_id']}")).json()
        trail = [(e["status"], e["attempt"], e["error"]) for e in run["history"]]
        assert trail == [(e["status"], e["attempt"], e["error"]) for e in worked["history"]]
        keywords = run["analyzer_output"]["keywords"]
        assert {"adopted", "cat", "miso"} <= set(keywords)
        assert [c["stage"] for c in run["llm_calls"]] == ["analyzer", "responder"]
        assert all(c["prompt_tokens"] > 0 and c["outcome"] == "ok" for c in run["llm_calls"])
        assert run["param_version"] == "builtin"


async def test_a_run_keeps_what_its_assembler_time_went_to(make_api: Any) -> None:
    """GET /v1/runs/{id} has the assembler's spans, nested like a trace viewer's, from the
    stage's own commit: the search (the connection wait, the one search statement with the
    candidates of each arm, the ranking) and the packing, all inside the stage's time."""
    async with make_api() as api:
        alice = await api.user()
        for fact in ("My cat Miso likes tuna.", "My cat sleeps on the sofa.", "I work at Acme."):
            told = (await alice.post("/v1/chat", json={"message": fact})).json()
            await close_and_archive(alice, told["thread_id"])
        asked = (await alice.post("/v1/chat", json={"message": "Tell me about my cat"})).json()
        run = (await alice.get(f"/v1/runs/{asked['run_id']}")).json()
    parts = run["stage_spans"]["assembler"]
    assert [(p["name"], p["depth"]) for p in parts] == [
        ("search", 0),  # no "embed query": these tests run without an embedder
        ("wait for a connection", 1),
        ("search statement", 1),
        ("rank", 1),
        ("prioritise", 0),  # the packing order: diversity, each part's share
        ("pack", 0),
    ]
    by = {p["name"]: p for p in parts}
    arms = by["search statement"]["detail"]
    assert (arms["bm25"], arms["trgm"], arms["vector"]) == (2, None, None)  # the cat facts; off
    found = len(run["memories"])
    assert by["rank"]["detail"] == {"kept": found} and by["search"]["detail"]["candidates"] == found
    used = sum(m["used"] for m in run["memories"])
    assert by["pack"]["detail"] == {"packed": used, "tokens": run["context_tokens"]} and used == 2
    search = by["search"]
    for child in parts[1:4]:  # inside the search, one after the other
        assert search["start_ms"] <= child["start_ms"]
        assert child["start_ms"] + child["ms"] <= search["start_ms"] + search["ms"] + 0.002
    assert search["start_ms"] + search["ms"] <= by["prioritise"]["start_ms"]
    assert by["prioritise"]["start_ms"] + by["prioritise"]["ms"] <= by["pack"]["start_ms"]
    assert by["pack"]["start_ms"] + by["pack"]["ms"] <= run["timings_ms"]["assembler"]


async def test_memory_crosses_threads_and_stays_with_its_owner(make_api: Any) -> None:
    async with make_api() as api:
        alice, bob = await api.user("alice"), await api.user("bob")
        first = (
            await alice.post("/v1/chat", json={"message": "I live in Lisbon with my dog Rex."})
        ).json()
        await close_and_archive(alice, first["thread_id"])
        thread_a = (await alice.get(f"/v1/threads/{first['thread_id']}")).json()
        stated = next(m["id"] for m in thread_a["messages"] if m["role"] == "user")

        answer = (await alice.post("/v1/chat", json={"message": "Where do I live?"})).json()
        assert answer["thread_id"] != first["thread_id"]
        assert "Lisbon" in answer["answer"]
        used = answer["memories_used"]
        assert used and used[0]["source_message_ids"] == [stated]
        assert used[0]["source_thread_id"] == first["thread_id"]

        other = (await bob.post("/v1/chat", json={"message": "Where do I live?"})).json()
        assert other["memories_used"] == []
        assert "Lisbon" not in other["answer"]
        assert (await bob.get("/v1/memories")).json()["memories"] == []
        assert (await bob.get(f"/v1/runs/{answer['run_id']}")).status_code == 404
        assert (await bob.get(f"/v1/threads/{first['thread_id']}")).status_code == 404


def as_replied(traced: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A run's memories as GET /v1/runs/{id} has them, as a chat or context reply has them: the
    trace's `deleted` flag (false: none was deleted here) is the trace's alone."""
    assert all(m.pop("deleted") is False for m in traced)
    return traced


async def test_context_endpoint_stops_at_ready_under_budget(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user()
        facts = " ".join(
            f"My friend number {i} is called Person{i} and likes chess." for i in range(40)
        )
        first = (await alice.post("/v1/chat", json={"message": facts})).json()
        await close_and_archive(alice, first["thread_id"])
        resp = await alice.post(
            "/v1/context", json={"query": "Who likes chess?", "max_tokens": 100}
        )
        body = resp.json()
        assert resp.status_code == 200 and body["status"] == "READY"
        assert 0 < body["context_tokens"] <= 100
        assert len(body["memories"]) > len(body["memories_used"]) > 0
        run = (await alice.get(f"/v1/runs/{body['run_id']}")).json()
        assert [e["status"] for e in run["history"]] == ALL[:5]
        # the reply was built by the request that drove the run (express lane), not read back:
        # it must say exactly what was stored
        assert body["memories"] == as_replied(run["memories"])
        chat = (await alice.post("/v1/chat", json={"message": "Who likes chess?"})).json()
        stored = (await alice.get(f"/v1/runs/{chat['run_id']}")).json()
        assert chat["memories_used"] == as_replied([m for m in stored["memories"] if m["used"]])
        assert chat["memories_used"] != []
        # the run itself came back from the responder's commit, not from a read: the same again
        same = ("thread_id", "status", "mode", "answer", "error", "timings_ms")
        assert {k: chat[k] for k in same} == {k: stored[k] for k in same}
        assert chat["run_id"] == stored["id"]
        # the express responder answered from what its assembler packed, a worker's responder
        # from what it reads back: one question, one answer (quoting the best memories, dated)
        queued = await alice.post("/v1/chat?wait=false", json={"message": "Who likes chess?"})
        events = (await alice.get(f"/v1/runs/{queued.json()['run_id']}/events")).text
        assert '"status": "COMPLETED"' in events
        worked = (await alice.get(f"/v1/runs/{queued.json()['run_id']}")).json()
        assert worked["answer"] == chat["answer"] and "Person" in chat["answer"]


async def test_changed_fact_supersedes_the_old_one(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user()
        one = (
            await alice.post("/v1/chat", json={"message": "My favourite colour is green."})
        ).json()
        await close_and_archive(alice, one["thread_id"])
        two = (
            await alice.post("/v1/chat", json={"message": "My favourite colour is purple now."})
        ).json()
        await close_and_archive(alice, two["thread_id"])
        current = (await alice.get("/v1/memories")).json()["memories"]
        texts = [m["text"] for m in current]
        assert any("purple" in t for t in texts) and not any("green" in t for t in texts)
        everything = (await alice.get("/v1/memories?include_closed=true")).json()["memories"]
        old = next(m for m in everything if "green" in m["text"])
        assert old["valid_to"] is not None and old["superseded_by"] is not None


async def test_idempotency_key_returns_the_same_run(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user()
        headers = {"Idempotency-Key": "msg-42"}
        one = (
            await alice.post("/v1/chat", json={"message": "hello there friend"}, headers=headers)
        ).json()
        two = (
            await alice.post("/v1/chat", json={"message": "hello there friend"}, headers=headers)
        ).json()
        assert one["run_id"] == two["run_id"] and one["answer"] == two["answer"]
        thread = (await alice.get(f"/v1/threads/{one['thread_id']}")).json()
        assert [m["role"] for m in thread["messages"]] == ["user", "assistant"]


async def test_concurrent_requests_with_one_idempotency_key_make_one_run(make_api: Any) -> None:
    """Requests racing with the same key: one message, one run; the others get that run (the
    loser's statement is rolled back whole, its message too)."""
    async with make_api() as api:
        alice = await api.user()
        headers = {"Idempotency-Key": "race-1"}
        body = {"message": "my sister is called Ada"}
        replies = await asyncio.gather(
            *(alice.post("/v1/chat", json=body, headers=headers) for _ in range(6))
        )
        assert {r.status_code for r in replies} == {200}
        assert len({r.json()["run_id"] for r in replies}) == 1
        thread = (await alice.get(f"/v1/threads/{replies[0].json()['thread_id']}")).json()
        assert [m["role"] for m in thread["messages"]] == ["user", "assistant"]
        threads = (await alice.get("/v1/threads")).json()
        assert len(threads) == 1


async def test_bad_requests_are_4xx_with_a_message(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user()
        no_key = await api.client.post("/v1/chat", json={"message": "hi"})
        assert no_key.status_code == 401 and "API key" in no_key.json()["error"]["message"]
        empty = await alice.post("/v1/chat", json={"message": ""})
        assert empty.status_code == 422 and empty.json()["error"]["code"] == "invalid_request"
        assert "message" in empty.json()["error"]["message"]
        nowhere = await alice.get("/v1/no-such-route")
        assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"
        assert (await alice.post("/v1/chat", json={})).status_code == 422
        missing = await alice.post(
            "/v1/chat", json={"message": "hi", "thread_id": "00000000-0000-0000-0000-000000000000"}
        )
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert (await alice.post("/v1/admin/users", json={"name": "x"})).status_code == 403
        assert (await alice.get("/v1/runs/not-a-uuid")).status_code == 422
        assert (await alice.delete("/v1/memories/999999")).status_code == 404


async def test_wait_false_returns_202_and_sse_streams_every_status(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user()
        resp = await alice.post("/v1/chat?wait=false", json={"message": "Paris is lovely in May."})
        assert resp.status_code == 202
        run_id = resp.json()["run_id"]
        events = (await alice.get(f"/v1/runs/{run_id}/events")).text
        statuses = [
            line.split('"status": "')[1].split('"')[0]
            for line in events.splitlines()
            if line.startswith('data: {"id"')
        ]
        assert statuses == ALL
        assert events.rstrip().endswith("event: end\ndata: {}")


async def test_health_reports_database_listener_and_mode(make_api: Any) -> None:
    async with make_api() as api:
        body = (await api.client.get("/health")).json()
        assert body["database"] == "ok" and body["mode"] == "offline"
        assert body["listener"]["connected"] is True


async def test_a_value_said_again_is_current_again(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user()
        for city in ("Porto", "Madrid", "Porto"):
            said = f"I moved to {city} this spring."
            sent = (await alice.post("/v1/chat", json={"message": said})).json()
            await close_and_archive(alice, sent["thread_id"])
        current = [m["text"] for m in (await alice.get("/v1/memories")).json()["memories"]]
        assert any("Porto" in t for t in current) and not any("Madrid" in t for t in current)
        everything = (await alice.get("/v1/memories?include_closed=true")).json()["memories"]
        assert len([m for m in everything if "moved to" in m["text"]]) == 2


async def test_express_runs_pass_new_analyzed_and_ready_without_waking_anyone(
    make_api: Any, db_url: str
) -> None:
    """Migrations 0024 and 0027: a run the express lane drives is recorded at every status, but
    is inserted at ANALYZING and goes from ANALYZING to ASSEMBLING and from ASSEMBLING to
    RESPONDING in one row version each, so the three passed statuses send no NOTIFY (nobody could
    claim them); a worker-driven run sends all. Either way the message is linked to its run."""
    heard: list[str] = []
    listener = await asyncpg.connect(db_url)
    await listener.add_listener("maas_runs", lambda *a: heard.append(a[-1]))
    try:
        async with make_api() as api:
            alice = await api.user()
            express = (await alice.post("/v1/chat", json={"message": "Tea at five."})).json()
            queued = await alice.post("/v1/chat?wait=false", json={"message": "Jam on toast."})
            worked = queued.json()["run_id"]
            await alice.get(f"/v1/runs/{worked}/events")  # returns once the run has ended
            # the last notifications may still be on their way
            await eventually(lambda: _completed_heard(heard, [express["run_id"], worked]), 10)
            for run_id in (express["run_id"], worked):
                history = (await alice.get(f"/v1/runs/{run_id}")).json()["history"]
                assert [e["status"] for e in history] == ALL
        rung = {
            run_id: [h.split(":")[0] for h in heard if h.endswith(run_id)]
            for run_id in (express["run_id"], worked)
        }
        assert rung[express["run_id"]] == [s for s in ALL if s not in ("NEW", "ANALYZED", "READY")]
        assert rung[worked] == ALL
        links = await listener.fetch(
            "SELECT r.id, m.run_id FROM maas.pipeline_runs r JOIN maas.messages m"
            " ON m.id = r.message_id WHERE r.id = ANY($1::uuid[])",
            [express["run_id"], worked],
        )
        assert len(links) == 2 and all(r["id"] == r["run_id"] for r in links)
    finally:
        await listener.close()


async def _completed_heard(heard: list[str], run_ids: list[str]) -> bool:
    return all(any(h.startswith("COMPLETED") and h.endswith(r) for h in heard) for r in run_ids)
