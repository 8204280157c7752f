"""The three ways in against a live `maas serve` (issue 17): the maas.client SDK, the official
openai SDK (base_url) and an MCP client each complete a remember -> recall round trip, and a
key only ever sees its own memories through them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from bench.scripted_llm import Reply, ScriptedLLM
from maas.client import AsyncMaaS, MaaS
from maas.client.errors import AuthenticationError, InvalidRequestError, NotFoundError
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server
from tests.faults.conftest import fault_env, llm_env

FACT = "My cat Miso is allergic to chicken."
QUESTION = "What is my cat allergic to?"


def serve(db_url: str, tmp_path: Path, servers: list[Server], **env: str) -> Server:
    server = Server(tmp_path / "data", fault_env(db_url, MAAS_POLL_S="0.2", **env))
    servers.append(server.start())
    return server


def new_key(server: Server, name: str) -> str:
    admin = server.client(ADMIN_KEY)
    key: str = admin.post("/v1/admin/users", json={"name": name}).json()["api_key"]
    return key


def recalled(ask: Any, timeout: float = 10.0) -> str:
    """Ask until the answer uses the fact (archived per turn, moments after it was told)."""
    deadline = time.monotonic() + timeout
    while True:
        answer: str = ask()
        if "chicken" in answer or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_maas_client_round_trip_and_surface(
    db_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    server = serve(db_url, tmp_path, servers)
    with MaaS(server.url, new_key(server, "alice")) as alice:
        told = alice.chat(FACT)
        assert told.status == "COMPLETED" and told.mode == "offline"
        answer = recalled(lambda: alice.chat(QUESTION).answer or "")
        assert "chicken" in answer
        queued = alice.chat("Where do I live?", wait=False)
        assert queued.status == "NEW"
        statuses = [e.status for e in alice.events(queued.run_id)]
        assert statuses[0] == "NEW" and statuses[-1] == "COMPLETED"
        assert alice.run(queued.run_id).status == "COMPLETED"

        context = alice.context(QUESTION, max_tokens=200)
        assert context.context and "chicken" in context.context
        [memory] = alice.search_memories("chicken").memories
        assert memory.source_thread_id == told.thread_id
        thread = alice.create_thread("imported").thread_id
        imported = alice.import_messages(thread, [{"role": "user", "text": "I live in Porto."}])
        assert len(imported.message_ids) == 1
        assert alice.close_thread(thread).closed
        assert alice.thread(thread).messages[0].content == "I live in Porto."
        assert any(t.id == thread for t in alice.threads().threads)
        with pytest.raises(InvalidRequestError) as bad:
            alice.memories(limit=0)
        assert bad.value.status == 422 and "limit" in bad.value.message

        with MaaS(server.url, new_key(server, "bob")) as bob:
            assert bob.search_memories("chicken").memories == []
            with pytest.raises(NotFoundError) as hidden:
                bob.delete_memory(memory.id)
            assert hidden.value.code == "not_found"
            with pytest.raises(NotFoundError):
                bob.thread(thread)
        assert alice.delete_memory(memory.id).deleted == memory.id
        assert "chicken" not in (alice.chat(QUESTION).answer or "")
        exported = alice.export()
        assert exported["threads"] and exported["messages"]
        assert alice.erase().erased["memories"] >= 1
        with pytest.raises(AuthenticationError):
            alice.memories()


def test_async_client_retries_429_after_retry_after(
    db_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    """Rate limit 60/min, burst 2: the third request meets a 429 with Retry-After: 1; the
    client waits and succeeds; with retries off it raises the 429."""
    env = {"MAAS_RATE_LIMIT_PER_MIN": "60", "MAAS_RATE_LIMIT_BURST": "2"}
    server = serve(db_url, tmp_path, servers, **env)
    key = new_key(server, "alice")

    async def run() -> tuple[int, float]:
        async with AsyncMaaS(server.url, key) as client:
            await client.chat(FACT)
            await client.memories()
            started = time.monotonic()
            listed = await client.memories()
            waited = time.monotonic() - started
        async with AsyncMaaS(server.url, key, max_retries=0) as impatient:
            for _ in range(3):
                try:
                    await impatient.memories()
                except Exception as exc:  # noqa: BLE001 (asserted below)
                    assert getattr(exc, "status", None) == 429, exc
                    return listed.limit, waited
        raise AssertionError("no 429 without retries")

    limit, waited = asyncio.run(run())
    assert limit == 50 and waited >= 0.9  # it waited for the Retry-After second


def test_openai_sdk_round_trip(db_url: str, tmp_path: Path, servers: list[Server]) -> None:
    server = serve(db_url, tmp_path, servers)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(server, "alice"))
    stranger = openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(server, "bob"))

    def ask(sdk: openai.OpenAI, text: str) -> str:
        reply = sdk.chat.completions.create(
            model="maas-offline", messages=[{"role": "user", "content": text}]
        )
        return reply.choices[0].message.content or ""

    ask(client, FACT)
    assert "chicken" in recalled(lambda: ask(client, QUESTION))
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    assert "chicken" in "".join(c.choices[0].delta.content or "" for c in stream)
    assert "chicken" not in ask(stranger, QUESTION)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong").models.list()
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert {"/v1/chat/completions", "/v1/models", "/v1/models/{model_id}"} <= set(paths)


async def mcp_round_trip(client: Any) -> dict[str, Any]:
    """remember -> search_memories -> list_memories -> forget through an MCP client session."""
    tools = {t.name for t in (await client.list_tools()).tools}
    assert tools == {"search_memories", "remember", "list_memories", "forget"}
    stored = (await client.call_tool("remember", {"text": FACT})).structured_content
    assert stored["stored"] and FACT in stored["memories"][0]["text"]
    found = (await client.call_tool("search_memories", {"query": QUESTION})).structured_content
    assert "chicken" in found["context"]
    [memory] = [m for m in found["memories"] if "chicken" in m["text"]]
    assert memory["source_thread_id"] == stored["thread_id"]
    listed = (await client.call_tool("list_memories", {})).structured_content
    assert [m["id"] for m in listed["memories"]] == [memory["id"]]
    bad = await client.call_tool("search_memories", {"query": ""})
    assert bad.is_error
    return {"memory": memory["id"]}


def test_mcp_over_streamable_http_and_stdio(
    db_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters
    from mcp.client.streamable_http import streamable_http_client

    server = serve(db_url, tmp_path, servers)
    alice, bob = new_key(server, "alice"), new_key(server, "bob")

    def threads_of(key: str) -> int:
        mine = httpx.get(f"{server.url}/v1/threads", headers={"Authorization": f"Bearer {key}"})
        return len(mine.json()["threads"])

    def over_http(key: str) -> Client:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
        return Client(streamable_http_client(f"{server.url}/mcp", http_client=http))

    async def run() -> None:
        async with over_http(alice) as client:
            made = await mcp_round_trip(client)
            threads = threads_of(alice)
            for text, why in (("a\x00b", "NUL"), ("   ", "whitespace")):  # refused as arguments,
                bad = await client.call_tool("remember", {"text": text})  # before any thread
                assert bad.is_error and why in str(bad.content), bad.content
            assert threads_of(alice) == threads
        async with over_http(bob) as intruder:  # bob sees and deletes nothing of alice's
            theirs = await intruder.call_tool("search_memories", {"query": QUESTION})
            assert theirs.structured_content["memories"] == []
            refused = await intruder.call_tool("forget", {"memory_id": made["memory"]})
            assert refused.is_error and "not_found" in str(refused.content)
        stdio = StdioServerParameters(
            command=str(Path(sys.executable).with_name("maas")),
            args=["mcp"],
            env={**os.environ, "MAAS_API_KEY": alice, "MAAS_URL": server.url},
        )
        async with Client(stdio) as client:
            found = await client.call_tool("search_memories", {"query": QUESTION})
            assert "chicken" in found.structured_content["context"]
            gone = await client.call_tool("forget", {"memory_id": made["memory"]})
            assert gone.structured_content == {"deleted": made["memory"]}
            after = await client.call_tool("list_memories", {})
            assert after.structured_content["memories"] == []

    asyncio.run(run())
    unauthenticated = httpx.post(f"{server.url}/mcp", json={})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "unauthorized"
    wrong = httpx.post(f"{server.url}/mcp", json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    stream = {"Authorization": f"Bearer {alice}", "Accept": "text/event-stream"}
    held = httpx.get(f"{server.url}/mcp", headers=stream, timeout=10)  # a stream never ended
    assert held.status_code == 405 and held.json()["error"]["code"] == "method_not_allowed"


def test_the_sdk_example_in_the_docs_runs(
    db_url: str, tmp_path: Path, servers: list[Server]
) -> None:
    """docs/sdk.md's example, as a user would run it."""
    server = serve(db_url, tmp_path, servers)
    text = (Path(__file__).resolve().parents[2] / "docs" / "sdk.md").read_text()
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(example)
    env = {**os.environ, "MAAS_URL": server.url, "MAAS_API_KEY": new_key(server, "alice")}
    ran = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("offline ") and "NEW" in lines[1] and "COMPLETED" in ran.stdout
    assert "chicken" in lines[-1]  # the memory found by search_memories


def test_the_three_ways_in_against_the_scripted_llm(
    db_url: str, tmp_path: Path, servers: list[Server], scripted: ScriptedLLM
) -> None:
    """LLM mode, `maas serve` pointed at the scripted OpenAI-compatible server: the maas.client
    SDK, the openai SDK and an MCP client each remember a fact and recall it; every extraction
    and every answer came from the model (each turn archived alone: MAAS_TURN_BATCH_TURNS=1)."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    env = llm_env(scripted.base_url, MAAS_TURN_BATCH_TURNS="1")
    server = serve(db_url, tmp_path, servers, **env)
    with MaaS(server.url, new_key(server, "carol")) as carol:
        told = carol.chat(FACT)
        assert told.mode == "llm"
        assert "chicken" in recalled(lambda: carol.chat(QUESTION).answer or "")

    sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key=new_key(server, "dave"))

    def ask(text: str) -> str:
        reply = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": text}])
        assert reply.model == "scripted"
        return reply.choices[0].message.content or ""

    ask(FACT)
    assert recalled(lambda: ask(QUESTION)).startswith("According to what I remember:")
    streams_the_models_tokens_as_they_come(server, sdk, scripted)

    erin = new_key(server, "erin")

    async def mcp() -> None:
        import httpx2

        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {erin}"}, timeout=30)
        async with Client(streamable_http_client(f"{server.url}/mcp", http_client=http)) as c:
            await mcp_round_trip(c)

    asyncio.run(mcp())
    stages = {r.stage for r in scripted.requests}
    assert {"analyzer", "archivist", "responder"} <= stages
    facts = [r for r in scripted.requests_for("archivist") if FACT in json.dumps(r.body)]
    assert len(facts) >= 3  # the three users' facts were extracted by the model


def streams_the_models_tokens_as_they_come(
    server: Server, sdk: openai.OpenAI, scripted: ScriptedLLM
) -> None:
    """The scripted model sends its first word, then holds the rest: the client has that word
    while the run is still answering; released, the rest follows and the run completes with
    the streamed answer (archived as the thread's reply)."""
    hold = threading.Event()
    scripted.push(Reply("Miso must never eat chicken.", hold=hold), stage="responder")
    raw = sdk.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    run = f"/v1/runs/{raw.headers['X-MaaS-Run-Id']}"
    api = server.client(sdk.api_key)
    pieces = iter(raw.parse())
    assert next(pieces).choices[0].delta.role == "assistant"
    assert next(pieces).choices[0].delta.content == "Miso "
    unfinished = api.get(run).json()
    assert unfinished["status"] == "RESPONDING" and unfinished["answer"] is None
    hold.set()
    assert "".join(c.choices[0].delta.content or "" for c in pieces) == "must never eat chicken."
    finished = api.get(run).json()
    assert (
        finished["status"] == "COMPLETED" and finished["answer"] == "Miso must never eat chicken."
    )
