"""The three ways in against a live `maas serve` (issue 17): the maas.client SDK, the official
openai SDK (base_url) and an MCP client each complete a remember -> recall round trip, and a
key only ever sees its own memories through them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from maas.client import AsyncMaaS, MaaS
from maas.client.errors import AuthenticationError, InvalidRequestError, NotFoundError
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server
from tests.faults.conftest import fault_env

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
    assert httpx.get(f"{server.url}/openapi.json").json()["paths"]["/v1/chat/completions"]
