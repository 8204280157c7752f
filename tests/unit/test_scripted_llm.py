"""The scripted fake LLM server, exercised through the real openai SDK."""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from bench.scripted_llm import Reply, ScriptedLLM, embed_text

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as srv:
        yield srv


@pytest.fixture
def client(server: ScriptedLLM) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as c:
        yield c


def chat(
    client: openai.OpenAI, stage: str | None, user: str = "hi", system: str = "sys", **kw: object
) -> str | None:
    headers = {"X-MaaS-Stage": stage} if stage else {}
    resp = client.chat.completions.create(
        model="test-model",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        extra_headers=headers,
        **kw,  # type: ignore[call-overload]
    )
    return resp.choices[0].message.content  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- defaults


def test_default_analyzer_reply(client: openai.OpenAI) -> None:
    msg = "Yesterday I met Anna in Lisbon, and the new project budget is fine. The budget!"
    parsed = json.loads(chat(client, "analyzer", msg) or "")
    assert parsed == {
        "keywords": ["yesterday", "met", "anna", "lisbon", "new", "project", "budget", "fine"],
        "entities": ["Anna", "Lisbon"],
        "time_expressions": [],
    }


def test_default_archivist_reply(client: openai.OpenAI) -> None:
    transcript = (
        "[3] user: I live in Lisbon. My dog is Rex! Do you like dogs? Ok then.\n"
        "[4] assistant: Nice to meet you, I like dogs.\n"
        "[5] user: I work at Acme Corp."
    )
    parsed = json.loads(chat(client, "archivist", transcript) or "")
    assert parsed == {
        "facts": [
            {"text": "I live in Lisbon.", "importance": 0.5, "source": [3], "kind": "fact"},
            {"text": "My dog is Rex!", "importance": 0.5, "source": [3], "kind": "fact"},
            {"text": "I work at Acme Corp.", "importance": 0.5, "source": [5], "kind": "fact"},
        ]
    }


def test_default_responder_reply(client: openai.OpenAI) -> None:
    system = "Answer using memories.\n[M1] User lives in Lisbon\n[M2] User's dog is Rex\n"
    answer = chat(client, "responder", "Where do I live?", system=system)
    assert answer == "According to what I remember: User lives in Lisbon; User's dog is Rex"
    assert chat(client, "responder", "Where do I live?", system="No memories.") == "I don't know."


def test_default_other_stage_and_usage_shape(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "one two three four five"}]
    )
    assert resp.choices[0].message.content == "OK"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "m" and resp.object == "chat.completion"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == round(5 * 1.3)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_models_endpoint(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["scripted-llm"]


# --------------------------------------------------------------------------- scripting


def test_queued_reply_consumed_once_then_default(
    server: ScriptedLLM, client: openai.OpenAI
) -> None:
    server.push(Reply(content="scripted"), stage="judge")
    assert chat(client, "responder") == "I don't know."  # other stage does not consume it
    assert chat(client, "judge") == "scripted"
    assert chat(client, "judge") == "OK"


def test_stage_queue_checked_before_any_stage_queue(
    server: ScriptedLLM, client: openai.OpenAI
) -> None:
    server.push("any-1")
    server.push("judge-1", stage="judge")
    assert chat(client, "judge") == "judge-1"
    assert chat(client, "judge") == "any-1"
    assert chat(client, "judge") == "OK"


def test_set_handler_and_reset(server: ScriptedLLM, client: openai.OpenAI) -> None:
    seen: list[tuple[str | None, str]] = []

    def handler(stage: str | None, body: dict[str, object]) -> Reply:
        seen.append((stage, str(body["model"])))
        return Reply(content=f"custom:{stage}")

    server.set_handler(handler)
    server.push("queued")
    assert chat(client, "judge") == "queued"
    assert chat(client, "judge") == "custom:judge"
    assert seen == [("judge", "test-model")]
    server.push("left-over")
    server.reset()
    assert server.requests == [] and server.pending() == 0
    server.set_handler(None)
    assert chat(client, "judge") == "OK"


def test_rate_limit_with_retry_after(server: ScriptedLLM, client: openai.OpenAI) -> None:
    server.push(Reply(status=429, headers={"Retry-After": "7"}), stage="analyzer")
    with pytest.raises(openai.RateLimitError) as info:
        chat(client, "analyzer")
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"


def test_server_error(server: ScriptedLLM, client: openai.OpenAI) -> None:
    server.push(Reply(status=500, content="boom"))
    with pytest.raises(openai.InternalServerError) as info:
        chat(client, "responder")
    assert "boom" in str(info.value)


def test_malformed_body_raises_json_error(server: ScriptedLLM, client: openai.OpenAI) -> None:
    # The SDK does not wrap this: a 200 with an invalid JSON body surfaces as JSONDecodeError.
    server.push(Reply(body="{not json"))
    with pytest.raises(json.JSONDecodeError):
        chat(client, "analyzer")


def test_malformed_content_is_returned_verbatim(server: ScriptedLLM, client: openai.OpenAI) -> None:
    server.push(Reply(content='{"keywords": ["x",'))
    content = chat(client, "analyzer")
    with pytest.raises(json.JSONDecodeError):
        json.loads(content or "")


def test_delay(server: ScriptedLLM, client: openai.OpenAI) -> None:
    server.push(Reply(content="slow", delay_s=0.2))
    start = time.perf_counter()
    assert chat(client, None) == "slow"
    assert time.perf_counter() - start >= 0.2


def test_hang_times_out_and_stop_is_prompt() -> None:
    srv = ScriptedLLM().start()
    try:
        srv.push(Reply(hang=True))
        c = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=0.5)
        with pytest.raises(openai.APITimeoutError):
            chat(c, "responder")
        srv.push(Reply(hang=True))  # a second hanging request still in flight during stop()
        worker = threading.Thread(target=_swallow_chat, args=(c,), daemon=True)
        worker.start()
        time.sleep(0.1)
    finally:
        start = time.perf_counter()
        srv.stop()
        assert time.perf_counter() - start < 2.0
    worker.join(timeout=2.0)
    assert not worker.is_alive()


def _swallow_chat(c: openai.OpenAI) -> None:
    with contextlib.suppress(openai.APIError):
        chat(c, "judge", timeout=30)


# --------------------------------------------------------------------------- streaming


def test_streaming_joins_to_full_content(server: ScriptedLLM, client: openai.OpenAI) -> None:
    server.push(Reply(content="The quick brown fox jumps."))
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The quick brown fox jumps."
    assert len(chunks) > 3
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_streaming_default_content(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "[M1] Likes tea"},
            {"role": "user", "content": "?"},
        ],
        stream=True,
        extra_headers={"X-MaaS-Stage": "responder"},
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "According to what I remember: Likes tea"


def test_cut_stream_raises(server: ScriptedLLM, client: openai.OpenAI) -> None:
    server.push(Reply(content="one two three four five six seven eight", cut_stream=True))
    received: list[str] = []
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises((openai.APIConnectionError, httpx.HTTPError)):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert 0 < len("".join(received)) < len("one two three four five six seven eight")


@pytest.mark.asyncio
async def test_async_client_streaming_and_errors(server: ScriptedLLM) -> None:
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0) as ac:
        server.push("async hello world", stage="responder")
        stream = await ac.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_headers={"X-MaaS-Stage": "responder"},
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "async hello world"
        server.push(Reply(status=429, headers={"Retry-After": "1"}))
        with pytest.raises(openai.RateLimitError):
            await ac.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


# --------------------------------------------------------------------------- embeddings


def _norm(vec: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vec))


def test_embeddings_deterministic_and_normalized(client: openai.OpenAI) -> None:
    first = client.embeddings.create(model="e", input=["I live in Lisbon", "My dog is Rex"])
    again = client.embeddings.create(model="e", input="I live in Lisbon")
    a, b = first.data[0].embedding, first.data[1].embedding
    assert len(a) == 384 and len(b) == 384
    assert a != b
    assert again.data[0].embedding == pytest.approx(a, abs=1e-6)  # SDK uses float32 base64
    assert _norm(a) == pytest.approx(1.0, abs=1e-5)
    assert first.usage.prompt_tokens > 0


def test_embeddings_dimensions_and_float_format(client: openai.OpenAI) -> None:
    resp = client.embeddings.create(
        model="e", input="hello", dimensions=64, encoding_format="float"
    )
    vec = resp.data[0].embedding
    assert len(vec) == 64
    assert vec == pytest.approx(embed_text("hello", 64))
    assert _norm(vec) == pytest.approx(1.0)


def _dot(x: list[float], y: list[float]) -> float:
    return sum(p * q for p, q in zip(x, y, strict=True))


def test_embeddings_shared_words_are_closer() -> None:
    base = embed_text("my dog Rex loves the park")
    near = embed_text("Rex the dog")
    far = embed_text("quarterly revenue spreadsheet")
    assert _dot(base, near) > _dot(base, far) + 0.3


def test_embeddings_can_be_scripted(server: ScriptedLLM, client: openai.OpenAI) -> None:
    server.push("not for embeddings")  # any-stage replies are for chat only
    server.push(Reply(status=503), stage="embeddings")
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="e", input="x")
    assert len(client.embeddings.create(model="e", input="x").data) == 1
    assert server.pending() == 1


# --------------------------------------------------------------------------- recording


def test_requests_recorded_with_stage_header(server: ScriptedLLM, client: openai.OpenAI) -> None:
    chat(client, "analyzer", "hello there")
    chat(client, None)
    client.embeddings.create(model="e", input="x")
    reqs = server.requests
    assert [(r.stage, r.path) for r in reqs] == [
        ("analyzer", "/v1/chat/completions"),
        (None, "/v1/chat/completions"),
        (None, "/v1/embeddings"),
    ]
    assert reqs[0].headers["x-maas-stage"] == "analyzer"
    assert reqs[0].body["messages"][-1]["content"] == "hello there"
    assert reqs[0].json is reqs[0].body
    assert [r.path for r in server.requests_for("analyzer")] == ["/v1/chat/completions"]


def test_concurrent_requests_are_all_recorded(server: ScriptedLLM) -> None:
    def worker() -> None:
        with openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as c:
            for _ in range(10):
                assert chat(c, "judge") == "OK"

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(server.requests_for("judge")) == 80


# --------------------------------------------------------------------------- process mode


def test_runs_as_process_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.scripted_llm", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:") and line.endswith("/v1")
        base_url = line.split(" ", 1)[1]
        with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0) as c:
            assert chat(c, "judge") == "OK"
        proc.terminate()
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
