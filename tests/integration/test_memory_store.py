"""store.write's near-duplicate merge, served by the (user hash, trigram) GiST index of migration
0040: per user, valid memories only, threshold from the transaction."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime
from typing import Any

from maas.db.pool import connect
from maas.db.queries import q
from maas.memory import store
from maas.memory.budget import stored_line_tokens


def memory(user: uuid.UUID, text: str, source: int) -> store.NewMemory:
    return store.NewMemory(user, text, "fact", None, 0.5, datetime.now(UTC), [source], None)


async def _user(conn: Any, name: str) -> uuid.UUID:
    sql = (
        "INSERT INTO maas.users (name, api_key_hash, key_prefix) VALUES ($1, $1, 'p') RETURNING id"
    )
    user: uuid.UUID = await conn.fetchval(sql, name)
    return user


async def test_near_duplicates_merge_per_user_and_only_into_valid_memories(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        alice, bob = await _user(conn, "alice"), await _user(conn, "bob")
        async with conn.transaction():
            await conn.execute(q("set_trgm_thresholds"), "0.8", "0.8")
            for i in range(200):  # enough rows for the index to matter
                await store.write(conn, memory(alice, f"Alice note {i}: the {i} blue herons", i))
            text = "Caroline adopted a tabby cat named Pixel in March 2021."
            assert await store.write(conn, memory(alice, text, 1000)) is True
            assert (
                await store.write(conn, memory(alice, text.replace("2021.", "2021 too."), 1001))
                is False
            )
            assert (
                await store.write(conn, memory(bob, text + " Indeed", 2000)) is True
            )  # other user
            merged = await conn.fetchval(
                "SELECT source_message_ids FROM maas.memories WHERE user_id = $1 AND text = $2",
                alice,
                text,
            )
            assert merged == [1000, 1001]
            await conn.execute("UPDATE maas.memories SET valid_to = now() WHERE text = $1", text)
            assert await store.write(conn, memory(alice, text + " Really", 1002)) is True
    finally:
        await conn.close()


async def test_the_near_duplicate_check_is_one_scan_of_the_users_trigram_index(
    db_url: str,
) -> None:
    """The query names the index's leading range (the user's hash), so the planner can answer
    both conditions from it, and keeps `user_id = $1` out of the scan: statistics taken before a
    user's rows came (as when a new user imports) put that user at one row, and a custom plan
    then read the user's every row by the plain user index and ran `%` on each (15 ms a check at
    800 memories, the archivist 4x slower). Both plan modes are checked, without hints."""
    conn = await connect(db_url)
    try:
        alice, bob = await _user(conn, "alice"), await _user(conn, "bob")
        await _notes(conn, bob, 300)
        await conn.execute("ANALYZE maas.memories")  # alice has no rows in the statistics
        await _notes(conn, alice, 300)
        for mode in ("force_custom_plan", "force_generic_plan"):
            async with conn.transaction():
                await conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
                plan = "\n".join(
                    r[0]
                    for r in await conn.fetch(
                        "EXPLAIN " + q("find_near_duplicate"), alice, "alice note 7: the 7 herons"
                    )
                )
            assert "Index Scan on memories_user_trgm" in plan or (  # bitmap or plain, one scan
                "Index Scan using memories_user_trgm on memories" in plan
            ), f"{mode}:\n{plan}"
            assert "uuid_hash" in plan.split("Index Cond:")[1], plan
    finally:
        await conn.close()


async def _notes(conn: Any, user: Any, count: int) -> None:
    await conn.executemany(
        "INSERT INTO maas.memories (user_id, text, fact_key, source_message_ids)"
        " VALUES ($1, $2, $2, '{1}')",
        [(user, f"{user.hex[:4]} note {i}: the {i} blue herons") for i in range(count)],
    )


async def test_a_second_writer_of_a_user_locks_nothing_until_the_first_commits(
    db_url: str,
) -> None:
    """The deadlock write_all prevents: A inserts (locking the user's statistics row), B merges
    a repeat into memory M (locking M) and then inserts (waiting for A), A merges into M (waiting
    for B). With the statistics row taken first, B waits before it has locked M."""
    conn_a, conn_b, probe = await connect(db_url), await connect(db_url), await connect(db_url)
    try:
        user = await _user(probe, "racer")
        said = "Caroline adopted a tabby cat named Pixel in March 2021."
        await store.write(probe, memory(user, said, 1))  # M, and the user's statistics row
        m_id = await probe.fetchval("SELECT id FROM maas.memories WHERE user_id = $1", user)
        again = memory(user, said.replace("2021.", "2021 too."), 2)  # merges into M
        async with conn_a.transaction():
            await conn_a.execute(q("set_trgm_thresholds"), "0.8", "0.8")
            await store.write_all(conn_a, user, [memory(user, "Alice keeps bees at home.", 3)])
            b = asyncio.create_task(_write_in_transaction(conn_b, user, [again, memory(
                user, "Bob paints the fence green.", 4)]))  # fmt: skip
            await asyncio.sleep(0.5)
            async with probe.transaction():  # B holds no lock on M: this raises if it does
                await probe.execute(
                    "SELECT id FROM maas.memories WHERE id = $1 FOR UPDATE NOWAIT", m_id
                )
            assert not b.done()
        assert await asyncio.wait_for(b, 10) == 1  # one new memory, one merge
        merged = await probe.fetchval(
            "SELECT source_message_ids FROM maas.memories WHERE id = $1", m_id
        )
        assert merged == [1, 2]
    finally:
        for c in (conn_a, conn_b, probe):
            await c.close()


async def _write_in_transaction(conn: Any, user: uuid.UUID, mems: list[store.NewMemory]) -> int:
    async with conn.transaction():
        await conn.execute(q("set_trgm_thresholds"), "0.8", "0.8")
        return await store.write_all(conn, user, mems)


async def test_a_hit_brings_its_sibling_chunks_of_the_owner_only(db_url: str) -> None:
    """Small-to-big: the other chunks of a hit's source turn follow it at sibling_decay × its
    score; a closed chunk, another user's row and the hits themselves are not repeated."""
    from maas.memory.search import search
    from maas.params import defaults

    conn = await connect(db_url)
    try:
        alice, bob = await _user(conn, "alice"), await _user(conn, "bob")
        for i in range(50):  # other turns, so the GIN probe has rows to skip
            await store.write(conn, memory(alice, f"Unrelated note {i} about chess openings", i))
        turn = 7000
        await store.write(conn, memory(alice, "I adopted a greyhound last spring", turn))
        await store.write(conn, memory(alice, "She sleeps on the red sofa all day", turn))
        await store.write(conn, memory(alice, "Her vet is in Leeds near the station", turn))
        await store.write(conn, memory(bob, "Bob keeps tropical fish in a tank", turn))
        await conn.execute(
            "UPDATE maas.memories SET valid_to = now() WHERE text LIKE 'Her vet%' AND user_id = $1",
            alice,
        )
        params = defaults()
        found = await search(conn, alice, "greyhound", ["greyhound"], None, params)
        texts = [c.text for c in found]
        assert texts[0] == "I adopted a greyhound last spring"
        assert "She sleeps on the red sofa all day" in texts
        assert not any("vet" in t or "fish" in t for t in texts)
        sofa = next(c for c in found if c.text.startswith("She sleeps"))
        assert sofa.components == {"linked_to": float(found[0].id)}
        assert sofa.score == found[0].score * params.num("retrieval.sibling_decay")
        assert len(texts) == len(set(texts))
        # the writer stored each line's token count; hits and siblings come back with it
        assert [c.line_tokens for c in found] == [stored_line_tokens(t) for t in texts]
    finally:
        await conn.close()


async def test_siblings_in_the_search_equal_the_separate_lookup(
    db_url: str, monkeypatch: Any
) -> None:
    """search_memories brings the siblings in the same round trip; the assembler must keep
    exactly what the separate sibling_memories lookup gave: siblings of kept hits only, a weak
    hit dropped by min_score back as a sibling of a kept one, closed chunks never."""
    from maas.memory import search as search_mod
    from maas.params import ParamSet, defaults

    conn = await connect(db_url)
    try:
        alice = await _user(conn, "alice")
        rng = random.Random(7)

        def word() -> str:  # made-up words: chunks distinct enough not to be merged as duplicates
            return "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(3))

        topics = ("garden tomatoes", "greenhouse roof leaked", "greyhound seedlings")
        for turn in range(36):  # turns of 1-3 chunks
            for topic in topics[: 1 + turn % 3]:
                text = f"{topic} {' '.join(word() for _ in range(5))}"
                await store.write(conn, memory(alice, text, 9000 + turn))
        await conn.execute(  # a closed chunk is never a sibling
            "UPDATE maas.memories SET valid_to = now() WHERE id = (SELECT min(id) FROM"
            " maas.memories WHERE text LIKE 'greenhouse%' AND user_id = $1)",
            alice,
        )
        closed = await conn.fetchval(
            "SELECT id FROM maas.memories WHERE valid_to IS NOT NULL AND user_id = $1", alice
        )
        base = defaults()
        hits: dict[str, set[int]] = {}
        for floor in (0.0, 0.9):  # 0.9 drops the weaker hits, some of them siblings of kept ones
            params = ParamSet("t", {**base.values, "retrieval.min_score": floor})
            for query in ("garden tomatoes", "greyhound seedlings", "garden greenhouse"):
                terms = query.split()
                at = datetime.now(UTC)
                together = await search_mod.search(conn, alice, query, terms, None, params, at)
                monkeypatch.setattr(search_mod, "siblings_in_search", lambda p: False)
                apart = await search_mod.search(conn, alice, query, terms, None, params, at)
                monkeypatch.undo()
                view = [(c.id, c.score, c.components) for c in together]
                assert view == [(c.id, c.score, c.components) for c in apart]
                assert any("linked_to" in c.components for c in together), query
                assert closed not in [c.id for c in together]
                linked = {c.id for c in together if "linked_to" in c.components}
                if floor == 0:
                    hits[query] = {c.id for c in together} - linked
                else:
                    assert linked & hits[query] or query != "garden greenhouse"  # dropped, back
    finally:
        await conn.close()


async def test_trigram_arm_finds_a_misspelt_word_of_the_owner_only(db_url: str) -> None:
    """With its weight on, the trigram arm scores keywords against the owner's memories (gated
    off entirely when there is no keyword); BM25 cannot match a misspelling."""
    from maas.memory.search import search
    from maas.params import ParamSet, defaults

    conn = await connect(db_url)
    try:
        alice, bob = await _user(conn, "alice"), await _user(conn, "bob")
        for i in range(30):
            await store.write(conn, memory(alice, f"Unrelated note {i} about chess openings", i))
        await store.write(conn, memory(alice, "I adopted a greyhound last spring", 500))
        await store.write(conn, memory(bob, "Bob adopted a greyhound too", 501))
        base = defaults()
        params = ParamSet(
            "t", {**base.values, "retrieval.w_trgm": 1.0, "retrieval.sibling_decay": 0}
        )
        found = await search(conn, alice, "greyhund", ["greyhund"], None, params)
        assert [c.text for c in found] == ["I adopted a greyhound last spring"]
        assert found[0].components["trgm"] > 0 and "bm25" not in found[0].components
        assert await search(conn, alice, "greyhund", ["greyhund"], None, base) == []
    finally:
        await conn.close()


async def test_vector_arm_is_exact_per_user_whatever_the_plan(db_url: str) -> None:
    """The HNSW index is shared by every tenant: walked with a user filter it yields only those
    of the global nearest that are the user's. The arm must rank all of the user's own vectors,
    under a generic plan too (asyncpg prepares statements; Postgres switches after five runs)."""
    import random

    from maas.memory.search import search
    from maas.params import ParamSet, defaults

    rng = random.Random(7)
    query = [rng.uniform(-1, 1) for _ in range(384)]
    near = [[x + rng.uniform(-0.01, 0.01) for x in query] for _ in range(300)]
    far = [[rng.uniform(-1, 1) for _ in range(384)] for _ in range(30)]
    insert = (
        "INSERT INTO maas.memories (user_id, text, fact_key, embedding)"
        " SELECT $1, t, md5(t), e::vector FROM unnest($2::text[], $3::text[]) AS x(t, e)"
    )
    conn = await connect(db_url)
    try:
        alice, bob = await _user(conn, "alice"), await _user(conn, "bob")
        bob_texts = [f"bob fact {i}" for i in range(300)]
        await conn.execute(insert, bob, bob_texts, [str(v) for v in near])
        alice_texts = [f"alice fact {i}" for i in range(30)]
        await conn.execute(insert, alice, alice_texts, [str(v) for v in far])
        await conn.execute("ANALYZE maas.memories")
        base = defaults()
        params = ParamSet(
            "t", {**base.values, "retrieval.min_score": 0, "retrieval.sibling_decay": 0}
        )
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        # make the index walk look cheapest, as it does beside big tenants
        await conn.execute("SET enable_seqscan = off; SET enable_sort = off")
        for _ in range(7):  # past the point where a cached plan would be generic anyway
            found = await search(conn, alice, "zzz", [], query, params)
            assert sorted(c.text for c in found) == sorted(alice_texts)
            assert all("vector" in c.components for c in found)
    finally:
        await conn.close()


async def test_a_memory_keeps_the_speaker_of_its_last_source_message(db_url: str) -> None:
    """Migration 0028: what the search used to look up per candidate is kept with the memory,
    and follows its provenance when a later message is merged in."""
    from maas.memory.search import search
    from maas.params import defaults

    conn = await connect(db_url)
    try:
        alice = await _user(conn, "alice")
        thread = await conn.fetchval(
            "INSERT INTO maas.threads (user_id, title) VALUES ($1, 't') RETURNING id", alice
        )
        ids = [
            await conn.fetchval(
                "INSERT INTO maas.messages (thread_id, user_id, role, speaker, content)"
                " VALUES ($1, $2, 'user', $3, 'x') RETURNING id",
                thread,
                alice,
                who,
            )
            for who in ("Jon", "Gina", None)
        ]
        await store.write(conn, memory(alice, "Jon opened a dance studio", ids[0]))
        await store.write(conn, memory(alice, "Gina lost her job at the bank", ids[1]))
        await store.write(conn, memory(alice, "Nobody in particular likes rain", ids[2]))
        found = await search(conn, alice, "studio job rain", ["studio", "job", "rain"], None,
                             defaults())  # fmt: skip
        assert {c.text.split()[0]: c.speaker for c in found} == {
            "Jon": "Jon",
            "Gina": "Gina",
            "Nobody": None,
        }
        # the same fact said again later by Gina: its last source message is hers now
        await store.write(conn, memory(alice, "Jon opened a dance studio!", ids[1]))
        speaker = await conn.fetchval(
            "SELECT speaker FROM maas.memories WHERE user_id = $1 AND text LIKE 'Jon%'", alice
        )
        assert speaker == "Gina"
    finally:
        await conn.close()


async def test_semantic_dedup_merges_paraphrases_and_keeps_new_details(db_url: str) -> None:
    """archivist.semantic_dedup (issue 17): a paraphrase that trigrams miss merges into the
    memory it repeats (provenance grows); a new day, name or number, another user's memory, a
    closed memory and a slot's change never merge; a slot's change supersedes."""
    from maas.llm.embed import LocalEmbedder

    texts = [
        "User: My cat Miso is allergic to chicken.",
        "User: My cat Miso has an allergy to chicken.",  # paraphrase: cosine 0.96
        "User: I went to the gym on Monday.",
        "User: I went to the gym on Tuesday.",  # cosine 0.97, but a new day
        "User: I live in Porto.",
        "User: I live in Lisbon now.",
    ]
    vectors = dict(zip(texts, await LocalEmbedder().embed(texts), strict=True))

    def mem(user: uuid.UUID, text: str, source: int, slot: str | None = None) -> store.NewMemory:
        made = store.NewMemory(user, text, "fact", slot, 0.5, datetime.now(UTC), [source], None)
        return store.NewMemory(**{**made.__dict__, "embedding": vectors[text]})

    conn = await connect(db_url)
    try:
        alice, bob = await _user(conn, "alice"), await _user(conn, "bob")
        async with conn.transaction():
            await conn.execute(q("set_trgm_thresholds"), "0.9", "0.9")
            assert await store.write(conn, mem(alice, texts[0], 1), 0.95) is True
            assert await store.write(conn, mem(alice, texts[1], 2), 1.0) is True  # off: a copy
            await conn.execute("DELETE FROM maas.memories WHERE text = $1", texts[1])
            assert await store.write(conn, mem(alice, texts[1], 2), 0.95) is False  # merged
            assert await store.write(conn, mem(bob, texts[1], 3), 0.95) is True  # bob's own
            assert await store.write(conn, mem(alice, texts[2], 4), 0.95) is True
            assert await store.write(conn, mem(alice, texts[3], 5), 0.95) is True  # new day
            slot = "user|city"
            assert await store.write(conn, mem(alice, texts[4], 6, slot), 0.95) is True
            assert await store.write(conn, mem(alice, texts[5], 7, slot), 0.95) is True
            rows = await conn.fetch(
                "SELECT text, source_message_ids, valid_to IS NULL AS valid FROM maas.memories"
                " WHERE user_id = $1 ORDER BY id",
                alice,
            )
    finally:
        await conn.close()
    assert [(r["text"], r["source_message_ids"], r["valid"]) for r in rows] == [
        (texts[0], [1, 2], True),
        (texts[2], [4], True),
        (texts[3], [5], True),
        (texts[4], [6], False),  # superseded by the change, not merged
        (texts[5], [7], True),
    ]


async def test_backfill_stores_the_line_counts_a_migration_forgot(db_url: str) -> None:
    """A database migrated across 0041 has memories with no line count: one walk in small batches
    stores each memory's count, keeps a count already stored, and finds nothing the second time."""
    conn = await connect(db_url)
    try:
        user = await _user(conn, f"backfill-{uuid.uuid4()}")
        words = ["heron", "kayak", "violin", "pottery", "marathon", "tulips", "glacier"]
        texts = [f"Note: the {w}\nwas  seen on day {i}" for i, w in enumerate(words)]
        async with conn.transaction():
            await conn.execute(q("set_trgm_thresholds"), "0.8", "0.8")
            for i, text in enumerate(texts):
                await store.write(conn, memory(user, text, 5000 + i))
        ids = await conn.fetch("SELECT id FROM maas.memories WHERE user_id = $1 ORDER BY id", user)
        assert len(ids) == len(texts)
        kept = ids[3]["id"]
        await conn.execute(
            "UPDATE maas.memories SET line_tokens = CASE WHEN id = $2 THEN 999 END"
            " WHERE user_id = $1",
            user,
            kept,
        )
        stored = await store.backfill_line_tokens(conn, asyncio.Event(), batch=2)
        assert stored >= 6  # other tests' memories may lack counts too
        rows = await conn.fetch(
            "SELECT id, text, line_tokens FROM maas.memories WHERE user_id = $1 ORDER BY id", user
        )
        assert [r["line_tokens"] for r in rows] == [
            999 if r["id"] == kept else stored_line_tokens(r["text"]) for r in rows
        ]
        assert await store.backfill_line_tokens(conn, asyncio.Event(), batch=2) == 0
    finally:
        await conn.close()
