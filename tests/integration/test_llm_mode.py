"""The same pipeline with the real openai client against a scripted server on 127.0.0.1."""

from __future__ import annotations

import json
import time
from typing import Any

from bench.scripted_llm import Reply, ScriptedLLM
from tests.helpers import close_and_archive


def llm(scripted: ScriptedLLM, **extra: Any) -> dict[str, Any]:
    return {
        "llm_base_url": scripted.base_url,
        "llm_api_key": "sk-test",
        "llm_model": "scripted",
        "llm_timeout_s": 2.0,
        **extra,
    }


async def test_memory_crosses_threads_in_llm_mode(make_api: Any, scripted: ScriptedLLM) -> None:
    async with make_api(**llm(scripted)) as api:
        alice, bob = await api.user("alice"), await api.user("bob")
        first = (
            await alice.post("/v1/chat", json={"message": "I work as a baker in Porto."})
        ).json()
        assert first["status"] == "COMPLETED" and first["mode"] == "llm"
        await close_and_archive(alice, first["thread_id"])
        answer = (
            await alice.post("/v1/chat", json={"message": "What is my job as a baker?"})
        ).json()
        assert "baker in Porto" in answer["answer"]
        assert answer["memories_used"][0]["source_thread_id"] == first["thread_id"]
        other = (await bob.post("/v1/chat", json={"message": "What is my job as a baker?"})).json()
        assert other["answer"] == "I don't know."

        run = (await alice.get(f"/v1/runs/{answer['run_id']}")).json()
        calls = run["llm_calls"]
        assert [c["stage"] for c in calls] == ["analyzer", "responder"]
        assert all(c["model"] == "scripted" and c["completion_tokens"] > 0 for c in calls)
        stages = [r.stage for r in scripted.requests]
        assert stages.count("archivist") == 1
        # The answer saw the packed memory in its system prompt, not another user's.
        responder = scripted.requests_for("responder")[1].body["messages"][0]["content"]
        assert "\nI work as a baker in Porto.\n" in responder  # its own line


async def test_malformed_reply_is_retried_then_succeeds(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    scripted.push(Reply(content="this is not json"), stage="analyzer")
    async with make_api(**llm(scripted)) as api:
        alice = await api.user()
        body = (await alice.post("/v1/chat", json={"message": "Tokyo trip in April"})).json()
        assert body["status"] == "COMPLETED"
        calls = (await alice.get(f"/v1/runs/{body['run_id']}")).json()["llm_calls"]
        assert [(c["stage"], c["outcome"]) for c in calls][:2] == [
            ("analyzer", "invalid"),
            ("analyzer", "ok"),
        ]


async def test_always_malformed_fails_with_error_recorded(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    scripted.set_handler(
        lambda stage, body: Reply(content="{not json" if stage == "analyzer" else "ok")
    )
    async with make_api(**llm(scripted, llm_max_retries=1, max_attempts=2)) as api:
        alice = await api.user()
        started = time.monotonic()
        resp = await alice.post("/v1/chat", json={"message": "will this work"})
        assert resp.status_code == 200 and time.monotonic() - started < 15
        body = resp.json()
        assert body["status"] == "FAILED"
        assert "invalid reply" in body["error"]
        run = (await alice.get(f"/v1/runs/{body['run_id']}")).json()
        assert [e["status"] for e in run["history"]] == [
            "NEW",
            "ANALYZING",
            "NEW",
            "ANALYZING",
            "FAILED",
        ]
        outcomes = [c["outcome"] for c in run["llm_calls"]]
        assert outcomes == ["invalid"] * 4  # 2 attempts x (1 call + 1 retry)


async def test_rate_limit_honours_retry_after(make_api: Any, scripted: ScriptedLLM) -> None:
    scripted.push(Reply(status=429, headers={"Retry-After": "1"}), stage="responder")
    async with make_api(**llm(scripted)) as api:
        alice = await api.user()
        body = (
            await alice.post("/v1/chat", json={"message": "Remind me about rate limits"})
        ).json()
        assert body["status"] == "COMPLETED"
        calls = (await alice.get(f"/v1/runs/{body['run_id']}")).json()["llm_calls"]
        responder = [c for c in calls if c["stage"] == "responder"]
        assert [c["outcome"] for c in responder] == ["error", "ok"]
        assert "429" in responder[0]["error"]
        assert body["timings_ms"]["responder"] >= 900


async def test_hang_hits_the_configured_timeout(make_api: Any, scripted: ScriptedLLM) -> None:
    scripted.push(Reply(hang=True), stage="responder")
    async with make_api(**llm(scripted, llm_timeout_s=0.5)) as api:
        alice = await api.user()
        started = time.monotonic()
        body = (await alice.post("/v1/chat", json={"message": "Does a hang hang us?"})).json()
        assert body["status"] == "COMPLETED" and time.monotonic() - started < 5
        calls = (await alice.get(f"/v1/runs/{body['run_id']}")).json()["llm_calls"]
        assert [c["outcome"] for c in calls if c["stage"] == "responder"] == ["timeout", "ok"]


async def test_the_responder_sees_the_thread_history_on_both_lanes(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    """The responder's prompt carries the thread's last messages before this one (oldest first),
    whether the request drove its run (the express lane) or the workers did (wait=false)."""
    async with make_api(**llm(scripted)) as api:
        alice = await api.user()
        said = ["One: my cat is Miso.", "Two: she likes tuna.", "Three: she is four."]
        tid = (await alice.post("/v1/chat", json={"message": said[0]})).json()["thread_id"]
        for text in said[1:]:
            await alice.post("/v1/chat", json={"message": text, "thread_id": tid})
        queued = await alice.post(
            "/v1/chat?wait=false", json={"message": "Four: and grey.", "thread_id": tid}
        )
        await alice.get(f"/v1/runs/{queued.json()['run_id']}/events")  # returns once it ended
        thread = (await alice.get(f"/v1/threads/{tid}")).json()["messages"]
        turns = [(m["role"], m["content"]) for m in thread]
        assert len(turns) == 8
        prompts = [r.body["messages"] for r in scripted.requests_for("responder")][-4:]
        for i, messages in enumerate(prompts):  # message i sees the 2i messages before it (≤ 6)
            history = [(m["role"], m["content"]) for m in messages[1:-1]]
            assert history == turns[: 2 * i][-6:]
            assert messages[-1]["content"] == turns[2 * i][1]


async def test_each_sub_question_of_the_analyzer_is_searched_and_packed(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    """A question about two things: the analyzer's parts are searched one by one, and each
    part's best memory heads the packing (the question's own words find neither: on the code
    before, nothing was packed)."""
    async with make_api(**llm(scripted)) as api:
        alice = await api.user()
        thread = (await alice.post("/v1/threads", json={"title": "garage"})).json()["thread_id"]
        said = [
            "I bought my red car in March 2015.",
            "I bought my green kayak in June 2019.",
            *(f"My neighbour number {i} waters the roses on Sundays." for i in range(12)),
        ]
        resp = await alice.post(
            f"/v1/threads/{thread}/messages",
            json={"messages": [{"role": "user", "text": t} for t in said]},
        )
        assert resp.status_code == 201
        await close_and_archive(alice, thread)
        analysis = {
            "keywords": ["which", "first"],
            "entities": [],
            "time_expressions": [],
            "parts": ["When did I buy my car?", "When did I buy my kayak?"],
        }
        scripted.push(json.dumps(analysis), stage="analyzer")
        body = (
            await alice.post("/v1/context", json={"query": "Which came first?", "max_tokens": 60})
        ).json()
        assert body["status"] == "READY"
        assert "red car in March 2015" in body["context"]
        assert "green kayak in June 2019" in body["context"]
        firsts = sorted(body["memories"], key=lambda m: m["rank"])[:2]
        assert {m["text"] for m in firsts} == {said[0], said[1]}
        prompt = scripted.requests_for("analyzer")[-1].body["messages"][0]["content"]
        assert '"parts"' in prompt
