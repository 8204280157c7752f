-- Memories: hybrid search (full text + trigram + vector), writes with dedupe and supersession.

-- name: set_trgm_thresholds
-- $1 word-similarity threshold for the <% operator, $2 similarity threshold for % (this txn only)
SELECT set_config('pg_trgm.word_similarity_threshold', $1::text, true),
       set_config('pg_trgm.similarity_threshold', $2::text, true)

-- name: search_settings
-- For one search transaction: trigram thresholds ($1 word similarity, $2 similarity) and a plan
-- made for this user's numbers (custom): the exact vector arm must read the user's own rows by
-- index, and a generic plan, costed for an average tenant, may scan the whole table instead.
SELECT set_config('pg_trgm.word_similarity_threshold', $1::text, true),
       set_config('pg_trgm.similarity_threshold', $2::text, true),
       set_config('plan_cache_mode', 'force_custom_plan', true)

-- name: search_memories
-- Candidates of user $1 from three arms, each capped at $5 and each with its own score:
--   bm25: Okapi BM25 (k1 $7, b $8) of the lexemes of query text $2 (English stemming); postings,
--         document frequencies and lengths come from the memory_terms index alone, corpus stats
--         from memory_stats; a context posting (the words of the turn a memory answers,
--         migration 0039) counts as $10 of a term (0: not at all);
--   trgm: trigram word similarity of any keyword in $3 (threshold set per transaction);
--   vec:  cosine similarity to embedding $4 (null = arm off).
-- $6 = also search closed (superseded) facts. The assembler fuses the arms. `speaker` is who said
-- the (last) source message (kept with the memory, migration 0028), so a question naming a person
-- can prefer what that person said.
-- With $9, also the candidates' siblings (small-to-big, retrieval.sibling_decay): the other valid
-- memories of their source messages, `sibling` true and no arm scores. They come in the same round
-- trip; the assembler keeps those of the candidates it keeps (search.py, with_siblings).
WITH stats AS (
  SELECT greatest(docs, 1)::float8 AS docs, greatest(total_len, 1)::float8 / greatest(docs, 1) AS avgdl
  FROM maas.memory_stats WHERE user_id = $1),
q AS (SELECT unnest(tsvector_to_array(to_tsvector('english', $2))) AS l),
-- Each lexeme's postings are one index range, read per lexeme (LATERAL, fenced by OFFSET 0):
-- without the fence, a plan made before the user's postings had statistics scanned all of them.
df AS MATERIALIZED (
  SELECT q.l, c.n FROM q CROSS JOIN LATERAL (
    SELECT count(*)::float8 AS n FROM maas.memory_terms p
    WHERE p.user_id = $1 AND p.lexeme = q.l AND ($6 OR p.valid)
      AND (NOT p.context OR $10::float8 > 0) OFFSET 0) c
  WHERE c.n > 0),
idf AS (
  SELECT df.l, ln(1 + (stats.docs - df.n + 0.5) / (df.n + 0.5)) AS w FROM df CROSS JOIN stats),
bm25 AS (
  SELECT p.memory_id AS id,
         sum(i.w * (p.tf * ($7 + 1)) / (p.tf + $7 * (1 - $8 + $8 * p.doclen / stats.avgdl))) AS r
  FROM idf i CROSS JOIN stats CROSS JOIN LATERAL (
    SELECT p.memory_id, CASE WHEN p.context THEN $10::float8 ELSE p.tf END AS tf, p.doclen
    FROM maas.memory_terms p
    WHERE p.user_id = $1 AND p.lexeme = i.l AND ($6 OR p.valid)
      AND (NOT p.context OR $10::float8 > 0) OFFSET 0) p
  -- equal scores (short memories sharing one term) are common at the cut: the earlier-written
  -- memory first, so the candidate set does not depend on the plan
  GROUP BY p.memory_id ORDER BY r DESC, p.memory_id LIMIT $5),
trg AS (  -- gated and fenced like bm25: a generic plan (asyncpg prepares statements, Postgres
  -- switches to one after five runs) scanned every memory in parallel even with no keyword
  SELECT t.id, max(t.s) AS s
  FROM unnest($3::text[]) AS k CROSS JOIN LATERAL (
    SELECT m.id, word_similarity(k, m.text) AS s FROM maas.memories m
    WHERE m.user_id = $1 AND ($6 OR m.valid_to IS NULL) AND k <% m.text OFFSET 0) t
  WHERE cardinality($3::text[]) > 0
  GROUP BY t.id ORDER BY s DESC LIMIT $5),
vec AS (  -- exact, over the user's own memories (fenced): the HNSW index is shared by every
  -- tenant, and walking it with a user filter returns only those of the global nearest that are
  -- the user's (7 of 200 in a test) -- the generic plan chose it
  SELECT v.id, v.v FROM (
    SELECT m.id, 1 - (m.embedding <=> $4::real[]::vector) AS v FROM maas.memories m
    WHERE $4::real[] IS NOT NULL AND m.user_id = $1 AND ($6 OR m.valid_to IS NULL)
      AND m.embedding IS NOT NULL OFFSET 0) v
  ORDER BY v.v DESC LIMIT $5),
cand AS (SELECT id FROM bm25 UNION SELECT id FROM trg UNION SELECT id FROM vec),
found AS MATERIALIZED (
  SELECT m.id, m.text, m.importance, m.event_time, m.created_at, m.valid_to IS NULL AS valid,
         m.source_message_ids, m.source_thread_id, bm25.r::float8 AS bm25, trg.s::float8 AS trgm,
         vec.v::float8 AS vector,
         m.speaker, m.line_tokens
  FROM cand JOIN maas.memories m USING (id)
  LEFT JOIN bm25 USING (id) LEFT JOIN trg USING (id) LEFT JOIN vec USING (id)),
-- each source message's memories from the memory_sources primary key, the candidates themselves
-- taken out before any memory row is read (most hits are the candidates), then one primary-key
-- fetch per sibling (both fenced, as in sibling_memories)
sib AS (
  SELECT y.id, y.text, y.importance, y.event_time, y.created_at, true AS valid,
         y.source_message_ids, y.source_thread_id, NULL::float8 AS bm25, NULL::float8 AS trgm,
         NULL::float8 AS vector, NULL::text AS speaker, y.line_tokens
  FROM (SELECT h.memory_id AS id
        FROM (SELECT DISTINCT unnest(f.source_message_ids) AS mid FROM found f) s
        CROSS JOIN LATERAL (
          SELECT x.memory_id FROM maas.memory_sources x WHERE x.message_id = s.mid OFFSET 0) h
        WHERE $9
        EXCEPT SELECT id FROM found) hit
  CROSS JOIN LATERAL (
    SELECT * FROM maas.memories z
    WHERE z.id = hit.id AND z.user_id = $1 AND z.valid_to IS NULL OFFSET 0) y)
SELECT found.*, false AS sibling FROM found
UNION ALL
SELECT sib.*, true FROM sib

-- name: lock_memory_stats
-- The user's statistics row, locked as an insert's statement trigger locks it (store.write_all:
-- a writer takes it before anything else). No row yet: nothing to lock, nothing to wait for.
SELECT 1 FROM maas.memory_stats WHERE user_id = $1 FOR NO KEY UPDATE

-- name: find_near_duplicate
-- A valid memory of user $1 whose text is trigram-similar to $2 (threshold set per txn), the most
-- similar first. `<->` is 1 - similarity: the same order. The inner scan names only the columns
-- of the (user hash, trigram) GiST index (migration 0040) and is fenced (OFFSET 0) so the user
-- filter stays outside it: given `user_id = $1` inside, a custom plan made while the user looked
-- small read all the user's rows by the plain user index and ran `%` on each (15 ms a check at
-- 800 memories, the archivist 4x slower in `maas bench pipeline`). A hash collision only adds
-- rows that the outer filter drops. `%` gets the text as a sub-select: given the value, the
-- planner estimated its selectivity over the text column's statistics, ~2.5 ms of planning per
-- check (0.2 ms without; the same plan).
SELECT c.id FROM (
  SELECT id, user_id, text <-> $2 AS d FROM maas.memories
  WHERE int8range(uuid_hash(user_id), uuid_hash(user_id), '[]') @> uuid_hash($1)::int8
    AND text % (SELECT $2::text) AND valid_to IS NULL OFFSET 0) c
WHERE c.user_id = $1
ORDER BY c.d LIMIT 1

-- name: find_semantic_duplicate
-- The valid memory of user $1 nearest to embedding $2 (an array of reals), if its cosine similarity
-- is at least $3 (archivist.semantic_dedup). An exact scan of the user's vectors, fenced like the
-- search's vector arm (search_memories): the global HNSW index walked with a user filter finds only
-- the few of the global nearest that are the user's. Memories with a slot are left out: a slot's
-- change supersedes, it never merges.
SELECT n.id, n.text, n.similarity FROM (
  SELECT m.id, m.text, 1 - (m.embedding <=> $2::real[]::vector) AS similarity FROM maas.memories m
  WHERE m.user_id = $1 AND m.valid_to IS NULL AND m.slot IS NULL AND m.embedding IS NOT NULL
  OFFSET 0) n
WHERE n.similarity >= $3
ORDER BY n.similarity DESC LIMIT 1

-- name: merge_provenance
-- $1 memory, $2 more source message ids (idempotent union)
UPDATE maas.memories
SET source_message_ids = ARRAY(SELECT DISTINCT unnest(source_message_ids || $2::bigint[]) ORDER BY 1)
WHERE id = $1

-- name: upsert_memory
-- One memory per (user, fact): a replay only unions provenance. $1 user, $2 text, $3 kind,
-- $4 slot, $5 fact key, $6 embedding (an array of reals, or null), $7 importance, $8 event time,
-- $9 source message ids, $10 source thread, $11 the tokens of its packed line (migration 0026),
-- $12 the words of the turn it answers (null: none; searched beside its own, migration 0039).
-- Returns the id and whether it is new. Every embedding parameter here is a real[] cast to vector:
-- binary on the wire, where the vector's text form cost Postgres a fifth of a LoCoMo ingest's CPU
-- in strtof (docs/performance.md).
INSERT INTO maas.memories
  (user_id, text, kind, slot, fact_key, embedding, importance, event_time, valid_from,
   source_message_ids, source_thread_id, line_tokens, context_search)
VALUES ($1, $2, $3, $4, $5, $6::real[]::vector, $7, $8, coalesce($8, now()), $9, $10, $11,
        to_tsvector('english', $12::text))
ON CONFLICT (user_id, fact_key) DO UPDATE
SET source_message_ids = ARRAY(
      SELECT DISTINCT unnest(maas.memories.source_message_ids || excluded.source_message_ids)
      ORDER BY 1)
RETURNING id, (xmax = 0) AS created

-- name: supersede_slot
-- A changed fact: close the other valid memories of user $1 about slot $2, replaced by $3.
UPDATE maas.memories
SET valid_to = coalesce((SELECT valid_from FROM maas.memories WHERE id = $3), now()),
    superseded_by = $3
WHERE user_id = $1 AND slot = $2 AND valid_to IS NULL AND id <> $3
  AND valid_from <= (SELECT valid_from FROM maas.memories WHERE id = $3)
RETURNING id

-- name: list_memories
-- Own memories of user $1, newest first; $2 optional text filter; $3 limit; $4 offset;
-- $5 include closed facts.
SELECT m.id, m.text, m.kind, m.slot, m.importance, m.event_time, m.valid_from, m.valid_to,
       m.superseded_by, m.source_message_ids, m.source_thread_id, m.created_at
FROM maas.memories m
WHERE m.user_id = $1 AND ($5 OR m.valid_to IS NULL)
  AND ($2::text IS NULL OR m.search @@ websearch_to_tsquery('english', $2) OR m.text ILIKE
       '%' || replace(replace(replace($2, '\', '\\'), '%', '\%'), '_', '\_') || '%')
ORDER BY m.created_at DESC, m.id DESC
LIMIT $3 OFFSET $4

-- name: memory_sources
-- Provenance details for messages $1 owned by user $2.
SELECT id, thread_id, role, speaker, created_at FROM maas.messages
WHERE id = ANY($1::bigint[]) AND user_id = $2

-- name: previous_messages
-- For each message of $1 owned by user $2, the message just before it in its thread.
SELECT m.id, (SELECT max(p.id) FROM maas.messages p
              WHERE p.thread_id = m.thread_id AND p.id < m.id) AS prev
FROM maas.messages m WHERE m.id = ANY($1::bigint[]) AND m.user_id = $2

-- name: sibling_memories
-- Valid memories of user $1 derived from any of messages $2 (other chunks of the same turns, or
-- the turns just before), except ids $3. Each message's memories from the memory_sources
-- primary key (migration 0020), then one primary-key fetch per hit (both LATERAL, fenced: a plan
-- made without statistics read all of memory_sources for `= ANY`, and in a generic plan the
-- planner preferred walking the user's every memory); ids $3 are taken out before any memory row
-- is read. Used with retrieval.neighbor_decay (the turns before need previous_messages first);
-- without it the siblings come with search_memories.
SELECT m.id, m.text, m.importance, m.event_time, m.created_at, true AS valid,
       m.source_message_ids, m.source_thread_id, NULL::float8 AS bm25, NULL::float8 AS trgm,
       NULL::float8 AS vector, NULL::text AS speaker, m.line_tokens
FROM (SELECT h.memory_id AS id FROM unnest($2::bigint[]) AS s(mid) CROSS JOIN LATERAL (
        SELECT x.memory_id FROM maas.memory_sources x WHERE x.message_id = s.mid OFFSET 0) h
      EXCEPT SELECT unnest($3::bigint[])) hit
CROSS JOIN LATERAL (
  SELECT * FROM maas.memories y
  WHERE y.id = hit.id AND y.user_id = $1 AND y.valid_to IS NULL OFFSET 0) m

-- name: memory_by_fact
-- The memory of user $1 for fact key $2, open or closed.
SELECT id, valid_to FROM maas.memories WHERE user_id = $1 AND fact_key = $2

-- name: reopen_memory
-- A closed fact said again later is true again from $2. $1 memory
UPDATE maas.memories SET valid_to = NULL, superseded_by = NULL, valid_from = $2
WHERE id = $1 AND valid_to IS NOT NULL
RETURNING id

-- name: memories_without_line_tokens
-- Up to $2 memories after id $1 with no stored line count (migration 0041 forgot them), in id
-- order: the primary key walks the table once, a batch at a time.
SELECT id, text FROM maas.memories
WHERE id > $1 AND line_tokens IS NULL
ORDER BY id
LIMIT $2

-- name: set_line_tokens
-- Store line counts $2 for memories $1 that still have none. No trigger watches line_tokens.
UPDATE maas.memories m SET line_tokens = v.n
FROM unnest($1::bigint[], $2::int[]) AS v(id, n)
WHERE m.id = v.id AND m.line_tokens IS NULL
