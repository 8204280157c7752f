"""maas.memory_stats (BM25 corpus size and length per user), maas.memory_terms (BM25 postings)
and maas.memory_sources (memories by source message) stay exact whatever the statement:
multi-row inserts, upserts, validity changes, text changes, deletes, and a user's erasure by
cascade."""

from __future__ import annotations

import uuid

from maas.db.pool import connect

TRUTH = """
SELECT user_id, count(*) AS docs, sum(length(search)) AS total_len FROM maas.memories
WHERE valid_to IS NULL GROUP BY user_id ORDER BY user_id
"""
TERMS_TRUTH = """
SELECT m.user_id, u.lexeme, m.id, cardinality(u.positions), length(m.search), m.valid_to IS NULL
FROM maas.memories m CROSS JOIN LATERAL unnest(m.search) AS u(lexeme, positions, weights)
ORDER BY 1, 2, 3
"""
TERMS = """
SELECT user_id, lexeme, memory_id, tf, doclen, valid FROM maas.memory_terms ORDER BY 1, 2, 3
"""
SOURCES_TRUTH = """
SELECT DISTINCT s.mid, m.id
FROM maas.memories m CROSS JOIN LATERAL unnest(m.source_message_ids) s(mid)
ORDER BY 1, 2
"""
SOURCES = "SELECT message_id, memory_id FROM maas.memory_sources ORDER BY 1, 2"
STATS = "SELECT user_id, docs, total_len FROM maas.memory_stats WHERE docs <> 0 ORDER BY user_id"
INSERT = """
INSERT INTO maas.memories (user_id, text, fact_key, source_message_ids)
SELECT $1, t, md5(t), ARRAY[n, n % 5, n % 5] FROM unnest($2::text[]) WITH ORDINALITY AS x(t, n)
ON CONFLICT (user_id, fact_key) DO UPDATE
SET source_message_ids = maas.memories.source_message_ids[2:] || '{7, 8}'::bigint[]
"""


async def _user(conn: object, name: str) -> uuid.UUID:
    sql = (
        "INSERT INTO maas.users (name, api_key_hash, key_prefix) VALUES ($1, $1, 'p') RETURNING id"
    )
    user: uuid.UUID = await conn.fetchval(sql, name)  # type: ignore[attr-defined]
    return user


async def _check(conn: object) -> None:
    for derived, truth in ((STATS, TRUTH), (TERMS, TERMS_TRUTH), (SOURCES, SOURCES_TRUTH)):
        got = [tuple(r) for r in await conn.fetch(derived)]  # type: ignore[attr-defined]
        assert got == [tuple(r) for r in await conn.fetch(truth)]  # type: ignore[attr-defined]
        assert got  # the statements above leave rows to compare


async def test_memory_stats_stay_exact(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        alice, bob = await _user(conn, "alice"), await _user(conn, "bob")
        texts = [f"fact number {i} about the garden and the {i % 7} roses" for i in range(300)]
        await conn.execute(INSERT, alice, texts)
        await conn.execute(INSERT, bob, texts[:50])
        await conn.execute(INSERT, alice, texts[:10] + ["one more thing about tea"])  # 10 upserts
        await _check(conn)
        await conn.execute(
            "UPDATE maas.memories SET valid_to = now() WHERE user_id = $1 AND text LIKE '%1 roses'",
            alice,
        )
        await conn.execute(
            "UPDATE maas.memories SET text = text || ' and tulips' WHERE user_id = $1 AND "
            "text LIKE '%2 roses'",
            alice,
        )
        await conn.execute(
            "DELETE FROM maas.memories WHERE user_id = $1 AND text LIKE '%3 roses'", bob
        )
        await conn.execute(
            "DELETE FROM maas.memories WHERE user_id = $1 AND text LIKE '%4 roses'", alice
        )
        await _check(conn)
        await conn.execute("DELETE FROM maas.users WHERE id = $1", bob)  # erasure cascades
        rows = await conn.fetch(
            "SELECT docs, total_len FROM maas.memory_stats WHERE user_id = $1", bob
        )
        assert [tuple(r) for r in rows] in ([(0, 0)], [])
        assert not await conn.fetchval(
            "SELECT count(*) FROM maas.memory_terms WHERE user_id = $1", bob
        )
        await _check(conn)  # bob's memory_sources rows went with his memories
        await conn.execute("UPDATE maas.memories SET valid_to = NULL WHERE user_id = $1", alice)
        await _check(conn)
    finally:
        await conn.close()
