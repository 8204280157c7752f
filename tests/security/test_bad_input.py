"""Bad input: 413 for big bodies, 422 with a reason (and no run row) for unstorable or wrong
values, 404 for unknown ids, 429 with Retry-After past the per-key rate."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY


async def counts(api: Any) -> tuple[int, int]:
    pool = api.service.runtime.pool
    runs = await pool.fetchval("SELECT count(*) FROM maas.pipeline_runs")
    messages = await pool.fetchval("SELECT count(*) FROM maas.messages")
    return runs, messages


def reason(resp: httpx.Response) -> str:
    return repr(resp.json())


async def test_oversized_bodies_are_413_declared_or_streamed(make_api: Any) -> None:
    async with make_api(max_body_bytes=10_000) as api:
        alice = await api.user()
        big = {"message": "x" * 20_000}
        resp = await alice.post("/v1/chat", json=big)
        assert resp.status_code == 413 and "limit of 10000 bytes" in reason(resp)

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"message": "'
            for _ in range(20):
                yield b"y" * 1000
            yield b'"}'

        streamed = await alice.post(
            "/v1/chat", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        assert await counts(api) == (0, 0)
        fine = await alice.post("/v1/chat", json={"message": "small enough"})
        assert fine.status_code == 200


async def test_a_body_that_never_finishes_is_408_and_nothing_stored(make_api: Any) -> None:
    """A request in flight keeps its connection (only idle ones are closed for room), so a body
    sent a byte at a time held one for ever: now the whole body has MAAS_BODY_TIMEOUT_S."""
    async with make_api(body_timeout_s=0.5) as api:
        alice = await api.user()
        never = asyncio.Event()

        async def stalls() -> AsyncIterator[bytes]:
            yield b'{"message": "hel'
            await never.wait()  # the rest never comes
            yield b'lo"}'

        sent = alice.post(
            "/v1/chat", content=stalls(), headers={"Content-Type": "application/json"}
        )
        resp = await asyncio.wait_for(sent, 20)  # the old code waited for ever
        assert resp.status_code == 408 and resp.json()["error"]["code"] == "timeout"
        assert "not received within 0.5 s" in reason(resp)
        assert await counts(api) == (0, 0)
        assert (await alice.post("/v1/chat", json={"message": "hello"})).status_code == 200


async def test_unstorable_or_empty_text_is_422_with_a_reason_and_no_run(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user()
        cases = {
            "NUL": {"message": "hello\x00world"},
            "surrogate": '{"message": "bad \\ud800 half"}',
            "empty": {"message": ""},
            "blank": {"message": "   \n\t "},
            "too long (default limit)": {"message": "x" * 32_001},
            "too long (hard cap)": {"message": "x" * 100_001},
        }
        for label, body in cases.items():
            if isinstance(body, str):
                resp = await alice.post(
                    "/v1/chat", content=body, headers={"Content-Type": "application/json"}
                )
            else:
                resp = await alice.post("/v1/chat", json=body)
            assert resp.status_code == 422, (label, resp.text)
        nul = await alice.post("/v1/chat", json={"message": "a\x00b"})
        assert "NUL" in reason(nul)
        sur = await alice.post(
            "/v1/chat",
            content='{"message": "x \\udfff"}',
            headers={"Content-Type": "application/json"},
        )
        assert "surrogate" in reason(sur)
        # the field is named: the echoed input once failed to encode, and that error was the reply
        assert sur.json()["error"]["code"] == "invalid_request", sur.text
        assert sur.json()["error"]["message"].startswith("message: "), sur.text
        assert (await alice.post("/v1/context", json={"query": "q\x00"})).status_code == 422
        assert (await alice.post("/v1/threads", json={"title": "t\x00"})).status_code == 422
        assert (await alice.get("/v1/memories", params={"query": "a\x00"})).status_code == 422
        thread = (await alice.post("/v1/threads", json={"title": "ok"})).json()["thread_id"]
        imported = await alice.post(
            f"/v1/threads/{thread}/messages",
            json={"messages": [{"role": "user", "text": "fine"}, {"role": "user", "text": "\x00"}]},
        )
        assert imported.status_code == 422
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        bad_name = await api.client.post("/v1/admin/users", json={"name": "\x00"}, headers=admin)
        assert bad_name.status_code == 422
        assert await counts(api) == (0, 0)


async def test_wrong_types_and_unknown_ids(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user()
        for body in ({"message": 5}, {"message": ["a"]}, {"message": "hi", "thread_id": "x"}, []):
            assert (await alice.post("/v1/chat", json=body)).status_code == 422, body
        assert (await alice.post("/v1/chat", content=b"{not json")).status_code == 422
        as_json = {"content-type": "application/json"}
        for raw in (b"Infinity", b"NaN", b"1e999", b'{"message": "hi", "thread_id": -1e999}'):
            bad = await alice.post("/v1/chat", content=raw, headers=as_json)  # json.loads: inf
            assert bad.status_code == 422, raw
            assert bad.json()["error"]["message"].startswith(("body: ", "thread_id: ")), raw
        long = {"model": "maas", "messages": [{"role": "user", "content": "x" * 100_001}]}
        over = await alice.post("/v1/chat/completions", json=long)
        assert over.status_code == 400  # the field as the client wrote it, no validator steps
        assert over.json()["error"]["message"].startswith("messages.0.content: "), over.text
        for tokens in (True, "500", 500.0):  # lax pydantic read `true` as one token
            ctx = await alice.post("/v1/context", json={"query": "q", "max_tokens": tokens})
            assert ctx.status_code == 422 and "max_tokens: " in reason(ctx), tokens
        for option in ({"max_tokens": True}, {"stream": 1}, {"temperature": "0.5"}, {"n": True}):
            sent = {"model": "maas", "messages": [{"role": "user", "content": "hi"}]} | option
            wrong = await alice.post("/v1/chat/completions", json=sent)
            assert wrong.status_code == 400 and next(iter(option)) in reason(wrong), option
        for title in ("", "   "):
            assert (await alice.post("/v1/threads", json={"title": title})).status_code == 422
        assert (await alice.get("/v1/memories", params={"limit": "many"})).status_code == 422
        assert (await alice.get("/v1/memories", params={"offset": 10**12})).status_code == 422
        assert (await alice.delete(f"/v1/memories/{2**70}")).status_code == 422
        unknown = str(uuid.uuid4())
        missing = await alice.post("/v1/chat", json={"message": "hi", "thread_id": unknown})
        assert missing.status_code == 404 and unknown in reason(missing)
        assert (await alice.get(f"/v1/runs/{unknown}")).status_code == 404
        assert (await alice.get(f"/v1/runs/{unknown}/events")).status_code == 404
        assert (await alice.get(f"/v1/threads/{unknown}")).status_code == 404
        assert (await alice.post(f"/v1/threads/{unknown}/close")).status_code == 404
        assert (await alice.delete("/v1/memories/987654")).status_code == 404
        assert await counts(api) == (0, 0)


async def test_rate_limit_per_key_answers_429_with_retry_after(make_api: Any) -> None:
    async with make_api(rate_limit_per_min=60, rate_limit_burst=3) as api:
        alice, bob = await api.user("alice"), await api.user("bob")
        codes = [(await alice.get("/v1/threads")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = await alice.get("/v1/threads")
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"]["code"] == "rate_limited"
        assert (await bob.get("/v1/threads")).status_code == 200  # per key, not global


async def test_message_over_the_configured_limit_is_422_and_no_run(make_api: Any) -> None:
    async with make_api(max_message_chars=100) as api:
        alice = await api.user()
        long = await alice.post("/v1/chat", json={"message": "x" * 101})
        assert long.status_code == 422 and "at most 100 characters" in reason(long)
        assert (await alice.post("/v1/context", json={"query": "q" * 101})).status_code == 422
        assert await counts(api) == (0, 0)
        assert (await alice.post("/v1/chat", json={"message": "x" * 100})).status_code == 200
