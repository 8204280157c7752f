"""Local embeddings (all-MiniLM-L6-v2 shipped in a PyPI package) find what words alone miss."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

from maas.llm.embed import (
    BATCH,
    LocalEmbedder,
    local_embeddings_installed,
    model_slots,
    torch_threads,
)
from maas.service import build_embedder
from tests.conftest import test_settings as settings_for
from tests.helpers import close_and_archive, encoding_threads


def test_local_embeddings_are_installed_with_the_test_extra() -> None:
    assert local_embeddings_installed()


async def test_local_embedder_ranks_paraphrases_closer() -> None:
    emb = LocalEmbedder()
    a, b, c = await emb.embed(
        ["I adopted a puppy last week.", "Do I have a dog?", "The stock market fell today."]
    )
    assert len(a) == 384 and abs(sum(x * x for x in a) - 1.0) < 1e-4

    def cos(u: list[float], v: list[float]) -> float:
        return sum(x * y for x, y in zip(u, v, strict=True))

    assert cos(a, b) > cos(b, c) + 0.2


async def test_texts_batched_by_length_come_back_in_the_callers_order() -> None:
    """More texts than a batch, long and short mixed: each vector is the one its text gets
    alone (the embedder sorts them by length into batches and must put them back)."""
    emb = LocalEmbedder()
    texts = [("word " * (1 + (i * 7) % 40)) + f"number {i}" for i in range(BATCH + 9)]
    together = await emb.embed(texts)
    for i in (0, 1, BATCH // 2, BATCH + 8):
        (alone,) = await emb.embed([texts[i]])
        assert max(abs(x - y) for x, y in zip(alone, together[i], strict=True)) < 1e-4, i


async def test_batches_run_at_once_up_to_the_slots_each_in_its_own_model() -> None:
    """MAAS_EMBED_BATCHES: three callers with four batches each; with two slots two threads are
    inside the model at once, never three; with one slot never two. Each vector is the one its
    text gets alone: two threads in one model's fast tokenizer fail ("Already borrowed")."""
    texts = [f"caller {c} says " + "words about boats and rivers " * (1 + i % 9) + str(i)
             for c in range(3) for i in range(4 * BATCH)]  # fmt: skip
    alone = await LocalEmbedder().embed(texts[:BATCH])
    for slots in (2, 1):
        emb = LocalEmbedder(threads=1, slots=slots)
        await emb.warm()
        seen: set[int] = set()
        work = asyncio.gather(
            *(emb.embed(texts[c * 4 * BATCH : (c + 1) * 4 * BATCH]) for c in range(3))
        )
        while not work.done():
            seen.add(encoding_threads())
            await asyncio.sleep(0.002)
        first = (await work)[0][:BATCH]
        assert max(seen) == slots, (slots, seen)
        for got, want in zip(first, alone, strict=True):
            assert max(abs(x - y) for x, y in zip(got, want, strict=True)) < 1e-4


def test_the_cpus_decide_how_many_batches_run_at_once(monkeypatch: Any) -> None:
    """Torch threads times batches stay within the CPUs, with at most two batches; asked, as
    asked."""
    for cpus, threads, slots in ((1, 1, 1), (2, 1, 2), (4, 3, 1), (8, 4, 2), (64, 4, 2)):
        monkeypatch.setattr(os, "cpu_count", lambda n=cpus: n)
        assert (torch_threads(0), model_slots(0, torch_threads(0))) == (threads, slots), cpus
    assert model_slots(3, 4) == 3


async def test_the_local_model_runs_on_the_configured_threads(db_url: str, tmp_path: Path) -> None:
    """MAAS_EMBED_THREADS reaches torch: while a service's embedder works through a big batch,
    two of this process's threads (besides the one asking) are runnable at once in a good share
    of samples with two configured (half, measured), hardly ever with one (under 1 %: the
    tokenizer's own threads)."""
    texts = [f"text {i} " + "many words about gardens and lakes " * 30 for i in range(64)]
    both: dict[int, float] = {}
    for threads in (2, 1):
        settings = settings_for(
            db_url, tmp_path, embedder="local", embed_threads=threads, embed_batches=1
        )
        embedder = build_embedder(settings)
        assert isinstance(embedder, LocalEmbedder)  # the local model, not None or a remote one
        work = asyncio.ensure_future(embedder.embed(texts))
        seen: list[int] = []
        while not work.done():
            seen.append(running_threads())
            await asyncio.sleep(0.005)
        await work
        both[threads] = sum(n >= 2 for n in seen) / len(seen)
    assert both[2] > 0.25 and both[1] < 0.1, both


def running_threads() -> int:
    """Threads of this process on a CPU now, other than the one asking."""
    me = str(threading.get_native_id())
    running = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # the thread ended meanwhile
            continue
        running += task.name != me and state == "R"
    return running


async def test_vector_arm_finds_a_paraphrase_that_bm25_misses(make_api: Any) -> None:
    async with make_api(embedder="local") as api:
        alice = await api.user()
        told = (
            await alice.post("/v1/chat", json={"message": "I adopted a puppy last week."})
        ).json()
        await close_and_archive(alice, told["thread_id"])
        ctx = (await alice.post("/v1/context", json={"query": "Do I own a dog?"})).json()
        assert ctx["memories_used"], ctx
        top = ctx["memories_used"][0]
        assert "puppy" in top["text"] and top["components"].get("vector", 0) > 0.3
        assert "bm25" not in top["components"]
        health = (await api.client.get("/health")).json()
        assert health["embedder"] == "local:all-minilm-l6-v2"


async def test_the_local_model_loads_while_the_service_starts(make_api: Any) -> None:
    """Not inside the first request (a fresh start's first chat took 5.1 s, all in the
    assembler): once the app has started, the model is loaded before anyone asked."""
    from maas.llm import embed

    embed._shared_model.cache_clear()
    async with make_api(embedder="local", embed_batches=2):
        assert embed._shared_model.cache_info().currsize == 2  # a model per slot


async def test_a_reply_archived_alone_still_leans_toward_the_turn_it_answers(
    make_api: Any,
) -> None:
    """archivist.context_mix across a slice boundary: with one message per slice (as a chat's
    per-turn archiving has it), the reply's vector still moves toward the turn before it."""
    turns = [
        {"role": "other", "speaker": "Nate", "text": "I adopted three turtles at the pet store."},
        {"role": "user", "speaker": "Joanna", "text": "They make me think of strength and hope."},
    ]
    async with make_api(embedder="local", archive_slice_messages=1) as api:
        joanna = await api.user()
        thread = (await joanna.post("/v1/threads", json={"title": "pets"})).json()["thread_id"]
        resp = await joanna.post(f"/v1/threads/{thread}/messages", json={"messages": turns})
        assert resp.status_code == 201, resp.text
        await close_and_archive(joanna, thread)
        stored = await api.service.runtime.pool.fetchval(
            "SELECT embedding::text FROM maas.memories WHERE text LIKE 'Joanna:%'"
        )
    vector = [float(x) for x in stored.strip("[]").split(",")]
    own, asked = await LocalEmbedder().embed(["Joanna: " + turns[1]["text"], turns[0]["text"]])

    def cos(u: list[float], v: list[float]) -> float:
        return sum(x * y for x, y in zip(u, v, strict=True))

    assert cos(vector, asked) > cos(own, asked) + 0.1  # it leans toward the turtles
    assert cos(vector, own) > 0.85  # and stays mostly its own
