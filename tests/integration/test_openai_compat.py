"""POST /v1/chat/completions and GET /v1/models through the official `openai` SDK (issue 17),
in process, offline and against the scripted LLM."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import openai
import pytest

from bench.scripted_llm import ScriptedLLM
from tests.helpers import eventually

FACT = "My cat Miso is allergic to chicken."
QUESTION = "What is my cat allergic to?"


@asynccontextmanager
async def sdk(api: Any, user: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    """The SDK pointed at MaaS (base_url), the user's MaaS key as its API key."""
    key = user.headers["Authorization"].removeprefix("Bearer ")
    http = httpx.AsyncClient(transport=api.client._transport, timeout=30)
    client = openai.AsyncOpenAI(base_url="http://maas/v1", api_key=key, http_client=http)
    try:
        yield client
    finally:
        await client.close()


def ask(text: str) -> list[Any]:
    return [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": text}]


async def remembered(user: httpx.AsyncClient, text: str) -> None:
    async def found() -> bool:
        memories = (await user.get("/v1/memories")).json()["memories"]
        return any(text in m["text"] for m in memories)

    await eventually(found)


async def test_offline_round_trip_with_the_openai_sdk(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user("alice")
        async with sdk(api, alice) as client:
            told = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=ask(FACT)
            )
            run_id = told.headers["X-MaaS-Run-Id"]
            assert told.headers["X-MaaS-Mode"] == "offline"
            await remembered(alice, FACT)  # archived per turn: no close
            answer = await client.chat.completions.create(model="any", messages=ask(QUESTION))
        assert answer.object == "chat.completion" and answer.model == "maas-offline"
        content = answer.choices[0].message.content or ""
        assert content.startswith("[offline mode") and "chicken" in content
        assert answer.choices[0].finish_reason == "stop"
        run = (await alice.get(f"/v1/runs/{run_id}")).json()
        assert run["client_type"] == "openai" and run["status"] == "COMPLETED"
        asked = (await alice.get(f"/v1/runs/{answer.id.removeprefix('chatcmpl-')}")).json()
        assert any("chicken" in m["text"] and m["used"] for m in asked["memories"])


async def test_streaming_gives_the_same_answer_in_chunks_then_done(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user("alice")
        async with sdk(api, alice) as client:
            await client.chat.completions.create(model="m", messages=ask(FACT))
            await remembered(alice, FACT)
            whole = await client.chat.completions.create(model="m", messages=ask(QUESTION))
            stream = await client.chat.completions.create(
                model="m", messages=ask(QUESTION), stream=True
            )
            chunks = [chunk async for chunk in stream]
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert len(chunks) > 4 and all(c.object == "chat.completion.chunk" for c in chunks)
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert text == whole.choices[0].message.content


async def test_llm_mode_forwards_with_memories_quoted_and_counts_tokens(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    llm = {"llm_base_url": scripted.base_url, "llm_api_key": "sk-t", "llm_model": "scripted"}
    async with make_api(turn_batch_turns=1, **llm) as api:
        alice = await api.user("alice")
        async with sdk(api, alice) as client:
            await client.chat.completions.create(model="m", messages=ask(FACT))
            await remembered(alice, FACT)
            scripted.push("Miso must not eat chicken.", stage="responder")
            answer = await client.chat.completions.create(model="m", messages=ask(QUESTION))
            stream = await client.chat.completions.create(
                model="m", messages=ask(QUESTION), stream=True
            )
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream])
        assert answer.model == "scripted"
        assert answer.choices[0].message.content == "Miso must not eat chicken."
        assert answer.usage is not None and answer.usage.completion_tokens > 0
        system = scripted.requests_for("responder")[-2].body["messages"][0]["content"]
        assert FACT in system  # the memory reached the model in the system prompt
        assert streamed and "[offline" not in streamed


async def test_thread_mapping_rule(make_api: Any) -> None:
    async with make_api() as api:
        alice, bob = await api.user("alice"), await api.user("bob")
        async with sdk(api, alice) as a, sdk(api, bob) as b:

            async def thread(client: openai.AsyncOpenAI, msgs: list[Any], **kw: Any) -> str:
                raw = await client.chat.completions.with_raw_response.create(
                    model="m", messages=msgs, **kw
                )
                return str(raw.headers["X-MaaS-Thread-Id"])

            first = await thread(a, ask("I live in Porto."))
            follow = ask("I live in Porto.") + [
                {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": "I work as a baker."},
            ]
            assert await thread(a, follow) == first  # same opening, same thread
            assert await thread(a, ask("Something else entirely.")) != first
            by_user = await thread(a, ask("One."), user="end-user-7")
            assert await thread(a, ask("Two."), user="end-user-7") == by_user
            assert await thread(b, ask("One."), user="end-user-7") != by_user
            pinned = await thread(a, ask("Three."), extra_headers={"X-MaaS-Thread": first})
            assert pinned == first
            with pytest.raises(openai.NotFoundError) as other:  # alice's thread, bob's key
                await thread(b, ask("Hi."), extra_headers={"X-MaaS-Thread": first})
        assert other.value.status_code == 404
        messages = (await alice.get(f"/v1/threads/{first}")).json()["messages"]
        assert [m["content"] for m in messages if m["role"] == "user"] == [
            "I live in Porto.",
            "I work as a baker.",
            "Three.",
        ]


async def test_a_key_recalls_only_its_own_memories(make_api: Any) -> None:
    async with make_api() as api:
        alice, bob = await api.user("alice"), await api.user("bob")
        async with sdk(api, alice) as a, sdk(api, bob) as b:
            await a.chat.completions.create(model="m", messages=ask(FACT))
            await remembered(alice, FACT)
            theirs = await b.chat.completions.create(model="m", messages=ask(QUESTION))
        assert "chicken" not in (theirs.choices[0].message.content or "")
        run = theirs.id.removeprefix("chatcmpl-")
        assert (await bob.get(f"/v1/runs/{run}")).json()["memories"] == []


async def test_bad_requests_get_openai_style_errors(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user("alice")
        async with sdk(api, alice) as client:
            with pytest.raises(openai.BadRequestError) as empty:
                await client.chat.completions.create(model="m", messages=[])
            with pytest.raises(openai.BadRequestError) as no_user:
                await client.chat.completions.create(
                    model="m", messages=[{"role": "system", "content": "hi"}]
                )
            with pytest.raises(openai.BadRequestError) as bad_thread:
                await client.chat.completions.create(
                    model="m", messages=ask("hi"), extra_headers={"X-MaaS-Thread": "nope"}
                )
            models = await client.models.list()
        for caught in (empty, no_user, bad_thread):
            error = caught.value.body
            assert isinstance(error, dict) and error["type"] == "invalid_request_error"
            assert error["message"] and error["code"]
        assert "messages" in str(empty.value.body) and "user message" in str(no_user.value.body)
        assert [m.id for m in models.data] == ["maas-offline"]
        http = httpx.AsyncClient(transport=api.client._transport, timeout=30)
        stranger = openai.AsyncOpenAI(base_url="http://maas/v1", api_key="nope", http_client=http)
        with pytest.raises(openai.AuthenticationError) as denied:
            await stranger.chat.completions.create(model="m", messages=ask("hi"))
        await stranger.close()
        assert denied.value.body["type"] == "authentication_error"  # type: ignore[index]


CLIENT_SYSTEM = "You are Captain Byte, a pirate. Always answer in one sentence."


async def test_llm_mode_keeps_the_clients_system_message_and_sampling_options(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    """The client's system message goes first in the model's system prompt, the memories
    (quoted as data) after it; its sampling options reach the model over MaaS's own, streamed
    (the model was asked to stream) or not; the run is in the inspector, its turn archived."""
    llm = {"llm_base_url": scripted.base_url, "llm_api_key": "sk-t", "llm_model": "scripted"}
    sampling = {"temperature": 1.3, "top_p": 0.5, "stop": ["\n\n"], "seed": 7}
    async with make_api(turn_batch_turns=1, **llm) as api:
        alice = await api.user("alice")
        async with sdk(api, alice) as client:
            await client.chat.completions.create(model="m", messages=ask(FACT))
            await remembered(alice, FACT)
            mine = [{"role": "system", "content": CLIENT_SYSTEM}, ask(QUESTION)[1]]
            scripted.push("Arr, no chicken for Miso.", stage="responder")
            await client.chat.completions.create(
                model="m", messages=mine, max_completion_tokens=33, **sampling
            )
            plain = scripted.requests_for("responder")[-1].body
            scripted.push("Arr, Miso eats no chicken.", stage="responder")
            raw = await client.chat.completions.with_raw_response.create(
                model="m", messages=mine, max_tokens=21, stream=True, **sampling
            )
            streamed = "".join([c.choices[0].delta.content or "" async for c in raw.parse()])
            live = scripted.requests_for("responder")[-1].body
        run_id = raw.headers["X-MaaS-Run-Id"]
        for sent in (plain, live):
            system = sent["messages"][0]["content"]
            assert system.startswith(CLIENT_SYSTEM) and FACT in system
            assert system.index(CLIENT_SYSTEM) < system.index("<memories>")
            assert {k: sent[k] for k in sampling} == sampling
        assert plain["max_completion_tokens"] == 33 and "max_tokens" not in plain
        assert live["max_tokens"] == 21 and live["stream"] is True and not plain.get("stream")
        assert streamed == "Arr, Miso eats no chicken."
        run = (await alice.get(f"/v1/runs/{run_id}")).json()
        assert run["status"] == "COMPLETED" and run["answer"] == streamed
        assert run["client_type"] == "openai" and run["mode"] == "llm"
        assert any("chicken" in m["text"] and m["used"] for m in run["memories"])
        messages = (await alice.get(f"/v1/threads/{run['thread_id']}")).json()["messages"]
        assert messages[-1]["role"] == "assistant" and messages[-1]["content"] == streamed


async def test_offline_mode_ignores_the_sampling_options_and_stays_labelled(
    make_api: Any,
) -> None:
    async with make_api() as api:
        alice = await api.user("alice")
        async with sdk(api, alice) as client:
            await client.chat.completions.create(model="m", messages=ask(FACT))
            await remembered(alice, FACT)
            mine = [{"role": "system", "content": CLIENT_SYSTEM}, ask(QUESTION)[1]]
            answer = await client.chat.completions.create(
                model="m", messages=mine, temperature=2, max_tokens=1
            )
            stream = await client.chat.completions.create(
                model="m", messages=mine, temperature=2, max_tokens=1, stream=True
            )
            pieces = [c.choices[0].delta.content or "" async for c in stream]
        content = answer.choices[0].message.content or ""
        assert content.startswith("[offline mode") and "chicken" in content
        assert "".join(pieces) == content and len(pieces) > 4


async def test_bad_sampling_options_get_openai_style_errors(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user("alice")
        async with sdk(api, alice) as client:
            for bad in ({"temperature": 3}, {"n": 2}, {"stop": ["a", "b", "c", "d", "e"]}):
                with pytest.raises(openai.BadRequestError) as caught:
                    await client.chat.completions.create(model="m", messages=ask("hi"), **bad)
                assert next(iter(bad)) in str(caught.value.body)
