"""A memory's context terms (issue 22, migration 0039): the first words of the turn it answers
are searched by BM25 beside its own words, at a fraction of a term, without embeddings; its text
stays its own; the postings follow the memory (validity, deletion)."""

from __future__ import annotations

from typing import Any

import httpx

from maas.params import BuiltinParams
from tests.conftest import running_api
from tests.conftest import test_settings as settings_for
from tests.helpers import close_and_archive

TURNS = [
    {"role": "other", "speaker": "Nate", "text": "I adopted three turtles at the pet store."},
    {"role": "user", "speaker": "Joanna", "text": "They make me think of strength and hope."},
]
REPLY = "Joanna: They make me think of strength and hope."


async def _told(client: httpx.AsyncClient) -> None:
    thread = (await client.post("/v1/threads", json={"title": "pets"})).json()["thread_id"]
    resp = await client.post(f"/v1/threads/{thread}/messages", json={"messages": TURNS})
    assert resp.status_code == 201, resp.text
    await close_and_archive(client, thread)


async def _found(client: httpx.AsyncClient, query: str) -> dict[str, Any]:
    ctx = (await client.post("/v1/context", json={"query": query})).json()
    return {m["text"]: m for m in ctx["memories"]}


async def test_a_reply_is_found_by_a_word_of_the_turn_it_answers(
    db_url: str, tmp_path: Any
) -> None:
    async with running_api(settings_for(db_url, tmp_path)) as api:  # no embedder: BM25 only
        joanna = await api.user()
        await _told(joanna)
        found = await _found(joanna, "Which turtles were adopted?")
        assert REPLY in found, found  # its own words say nothing of turtles
        own = found["Nate: I adopted three turtles at the pet store."]["components"]["bm25"]
        assert 0 < found[REPLY]["components"]["bm25"] < own  # a fraction of a term
        pool = api.service.runtime.pool
        reply_id = await pool.fetchval("SELECT id FROM maas.memories WHERE text = $1", REPLY)
        postings = "SELECT lexeme, valid FROM maas.memory_terms WHERE memory_id = $1 AND context"
        assert {r["lexeme"] for r in await pool.fetch(postings, reply_id)} >= {"turtl", "adopt"}
        # closed, its context postings close with it; deleted, they go with it
        await pool.execute("UPDATE maas.memories SET valid_to = now() WHERE id = $1", reply_id)
        assert not any(r["valid"] for r in await pool.fetch(postings, reply_id))
        assert (await joanna.delete(f"/v1/memories/{reply_id}")).status_code in (200, 204)
        assert await pool.fetch(postings, reply_id) == []


async def test_weight_zero_searches_the_memorys_own_words_only(db_url: str, tmp_path: Any) -> None:
    off = BuiltinParams({"retrieval.w_context_terms": 0.0})
    async with running_api(settings_for(db_url, tmp_path), off) as api:
        joanna = await api.user()
        await _told(joanna)
        found = await _found(joanna, "Which turtles were adopted?")
        assert REPLY not in found or "bm25" not in found[REPLY]["components"], found
