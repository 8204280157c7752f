"""Archive jobs: big imports become memories in bounded slices, failed ranges are retried, and
one user's import does not hold up another user's archiving (issue 20, item 3)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.scripted_llm import Reply, ScriptedLLM
from maas.llm.embed import LocalEmbedder
from maas.params import BuiltinParams
from tests.conftest import running_api
from tests.conftest import test_settings as settings_for
from tests.helpers import encoding_threads, eventually

PLACES = ("Lisbon", "Oslo", "Kyoto", "Lima", "Accra", "Quebec", "Hobart", "Tartu", "Cusco")
FOODS = ("pastries", "noodles", "dumplings", "ceviche", "waffles", "curry", "tacos", "soup")
FRIENDS = ("Ana", "Bruno", "Chidi", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun")


def dialog(count: int, words: int = 80) -> list[dict[str, Any]]:
    """`count` turns of a two-person dialog, each a few distinct, plain statements."""
    turns = []
    for i in range(count):
        place, food = PLACES[i % len(PLACES)], FOODS[(i // 3) % len(FOODS)]
        friend = FRIENDS[(i // 7) % len(FRIENDS)]
        text = (
            f"On trip number {i} we flew to {place} with {friend} and stayed {i % 9 + 2} nights. "
            f"We ate {food} at a small place near the harbour on street {i * 7 % 311}. "
            f"The guide told us that building {i * 13 % 997} was older than the cathedral. "
            f"{friend} bought {i % 5 + 1} postcards and a {FOODS[i % len(FOODS)]} cookbook. "
        )
        while len(text.split()) < words:
            text += f"Later that evening we counted {i * 3 % 101 + len(text)} stars above {place}. "
        speaker = "Ben" if i % 2 else "Cleo"
        turns.append({"role": "user" if i % 2 else "other", "speaker": speaker, "text": text})
    return turns


def about_one_megabyte() -> list[dict[str, Any]]:
    """As many ~500-character turns as fit under the 1 MiB body limit (0.96-1.0 MB)."""
    turns = dialog(2000)
    while len(json.dumps({"messages": turns})) > 1_040_000:
        turns.pop()
    return turns


async def import_thread(client: httpx.AsyncClient, turns: list[dict[str, Any]]) -> tuple[str, Any]:
    thread = (await client.post("/v1/threads", json={"title": "import"})).json()["thread_id"]
    resp = await client.post(f"/v1/threads/{thread}/messages", json={"messages": turns})
    assert resp.status_code == 201, resp.text[:300]
    return thread, resp.json()["message_ids"]


JOB = "SELECT * FROM maas.archive_jobs WHERE id = $1"
UNACCOUNTED = """
SELECT count(*) FROM unnest($1::bigint[]) AS imported(id)
WHERE NOT EXISTS (SELECT 1 FROM maas.memories m WHERE imported.id = ANY (m.source_message_ids))
"""


async def job_is(pool: Any, job_id: int, status: str) -> Any:
    job = await pool.fetchrow(JOB, job_id)
    return job if job["status"] == status else None


async def no_encoding_for(seconds: float) -> bool:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if encoding_threads():
            return False
        await asyncio.sleep(0.02)
    return True


@pytest.mark.slow
async def test_a_1mb_import_is_archived_completely_after_a_timed_out_slice_with_no_runaway_thread(
    db_url: str, tmp_path: Path
) -> None:
    """A 0.96-1.0 MB import with local embeddings. First a service whose archivist takes a first
    slice of 300,000 characters (~2,600 memories to embed: ~20 CPU seconds) under a 6 s deadline:
    the attempt is cut while embedding (in both of its model slots), the embedding stops between
    batches (no thread left inside the model), the job fails. Then a service with the default
    slices: closing the thread again queues the failed job again, and every imported message ends up
    in a memory's provenance, every memory with its vector. (That service cuts memories of up to 400
    words, the parameter's maximum: 1 MB is ~170k words, ~40 CPU seconds of embedding either way,
    but ~400 memories to write instead of ~8,500; docs/performance.md times the default. Nor does it
    embed each turn's context for archivist.context_mix (~30 s more here): what is tested is that
    everything is archived, not how the vectors lean.)"""
    await LocalEmbedder().embed(["the model loads once per process"])
    seen: list[int] = []

    async def most_encoding_threads() -> None:
        while True:
            if (n := encoding_threads()) and n not in seen:
                seen.append(n)
            await asyncio.sleep(0.01)

    turns = about_one_megabyte()
    big_slice = {"archive_slice_messages": 2000, "archive_slice_chars": 300_000}
    cut = settings_for(db_url, tmp_path, embedder="local", embed_batches=2, stage_deadline_s=6.0,
                       max_attempts=1, archive_retry_s=3600, **big_slice)  # fmt: skip
    async with running_api(cut) as api:
        alice = await api.user()
        auth = {"Authorization": alice.headers["Authorization"]}
        thread, ids = await import_thread(alice, turns)
        watch = asyncio.ensure_future(most_encoding_threads())
        job_id = (await alice.post(f"/v1/threads/{thread}/close")).json()["archive_job_id"]
        pool = api.service.runtime.pool
        failed = await eventually(lambda: job_is(pool, job_id, "failed"), timeout=60)
        watch.cancel()
        assert failed["error"] == "stage deadline exceeded"
        assert max(seen) == 2  # the deadline cut the embedding: it had started, in both slots
        assert await eventually(lambda: no_encoding_for(1.0), timeout=10)  # one batch at most
        assert await pool.fetchval("SELECT count(*) FROM maas.memories") == 0

    long_memories = BuiltinParams({"archivist.max_memory_words": 400, "archivist.context_mix": 0})
    async with running_api(settings_for(db_url, tmp_path, embedder="local"), long_memories) as api:
        pool = api.service.runtime.pool
        resp = await api.client.post(f"/v1/threads/{thread}/close", headers=auth)
        assert resp.json()["archive_job_id"] == job_id  # closing again queued the failed range
        done = await eventually(lambda: job_is(pool, job_id, "done"), timeout=900)
        assert await pool.fetchval(UNACCOUNTED, ids) == 0
        made = await pool.fetchrow(
            "SELECT count(*) AS n, count(embedding) AS embedded FROM maas.memories"
        )
        assert made["n"] == made["embedded"] == done["memories_created"]
        marked = await pool.fetchval("SELECT archived_upto FROM maas.threads WHERE id = $1", thread)
        assert marked == max(ids) == done["upto_message_id"]


def llm(scripted: ScriptedLLM) -> dict[str, Any]:
    return {"llm_base_url": scripted.base_url, "llm_api_key": "k", "llm_model": "scripted",
            "llm_max_retries": 0, "max_attempts": 1}  # fmt: skip


FACTS = [{"role": "user", "text": "I keep bees on the roof of my house in Porto."}]


async def test_a_failed_range_is_retried_by_closing_the_thread_again(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    """The archivist's model fails the job's only attempt; closing the thread again queues the
    same job again (it answered archive_job_id null and the range was never archived)."""
    scripted.push(Reply(status=500), stage="archivist")
    async with make_api(archive_retry_s=3600, **llm(scripted)) as api:
        alice = await api.user()
        thread, ids = await import_thread(alice, FACTS)
        job_id = (await alice.post(f"/v1/threads/{thread}/close")).json()["archive_job_id"]
        pool = api.service.runtime.pool
        failed = await eventually(lambda: job_is(pool, job_id, "failed"))
        assert "500" in failed["error"]
        again = (await alice.post(f"/v1/threads/{thread}/close")).json()["archive_job_id"]
        assert again == job_id
        await eventually(lambda: job_is(pool, job_id, "done"))
        assert await pool.fetchval(UNACCOUNTED, ids) == 0
        assert (await alice.post(f"/v1/threads/{thread}/close")).json()["archive_job_id"] is None


async def test_a_failed_job_is_queued_again_by_itself_with_a_growing_delay(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    """Two failed rounds (one attempt each), then the model answers: the job is queued again
    after MAAS_ARCHIVE_RETRY_S (0.4 s), then after twice that, and ends done with its memory."""
    for _ in range(2):
        scripted.push(Reply(status=500), stage="archivist")
    async with make_api(archive_retry_s=0.4, **llm(scripted)) as api:
        alice = await api.user()
        thread, ids = await import_thread(alice, FACTS)
        job_id = (await alice.post(f"/v1/threads/{thread}/close")).json()["archive_job_id"]
        pool = api.service.runtime.pool
        done = await eventually(lambda: job_is(pool, job_id, "done"))
        calls = await pool.fetch(
            "SELECT created_at, outcome FROM maas.llm_calls WHERE archive_job_id = $1 ORDER BY id",
            job_id,
        )
    assert [c["outcome"] for c in calls] == ["error", "error", "ok"]
    times = [c["created_at"] for c in calls]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert gaps[0] >= 0.4 and gaps[1] >= 0.8
    assert done["rounds"] == 0 and done["error"] is None and done["memories_created"] == 1


async def test_one_users_big_import_does_not_hold_up_another_users_small_job(
    make_api: Any,
) -> None:
    """One archivist; user A's 600-turn import (12 slices of 50 turns) is queued first, user
    B's 2-turn thread right after. B's job is done after at most U - 1 + W = 2 of A's slices
    (one archivist, two users): it waited for the whole import before."""
    async with make_api(archivist_concurrency=1, archive_slice_messages=50) as api:
        big, small = await api.user("big"), await api.user("small")
        big_thread, big_ids = await import_thread(big, dialog(600, words=40))
        small_thread, _ = await import_thread(small, dialog(2, words=20))
        big_job = (await big.post(f"/v1/threads/{big_thread}/close")).json()["archive_job_id"]
        small_job = (await small.post(f"/v1/threads/{small_thread}/close")).json()
        pool = api.service.runtime.pool
        small_done = await eventually(
            lambda: job_is(pool, small_job["archive_job_id"], "done"), timeout=60
        )
        await eventually(lambda: job_is(pool, big_job, "done"), timeout=120)
        ahead = await pool.fetchrow(SLICES_BEFORE, big_job, small_done["finished_at"])
        assert await pool.fetchval(UNACCOUNTED, big_ids) == 0
    assert ahead["slices"] <= 2 and ahead["total"] == 12
    assert ahead["tokens_before"] * 4 < ahead["tokens"]  # a few slices, not the whole import


# The slices (the archivist's calls) of job $1 made before $2, and the transcript tokens they
# read, beside all of them.
SLICES_BEFORE = """
SELECT count(*) FILTER (WHERE created_at < $2) AS slices, count(*) AS total,
       sum(prompt_tokens) FILTER (WHERE created_at < $2) AS tokens_before,
       sum(prompt_tokens) AS tokens
FROM maas.llm_calls WHERE archive_job_id = $1
"""
