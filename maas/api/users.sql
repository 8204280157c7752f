-- A user's own account: revocation, erasure, export. Every query is scoped by the user id $1.
-- An export query returns each row's JSON as text: the export joins it as it is (users.export).

-- name: revoke_user_key
-- $1 user. Returns the user when it exists (revoking twice keeps the first time); its web
-- sessions end with the key.
WITH ended AS (DELETE FROM maas.sessions WHERE user_id = $1)
UPDATE maas.users SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
RETURNING id, revoked_at

-- name: user_footprint
-- How many rows user $1 has in each table that holds user data.
SELECT (SELECT count(*) FROM maas.users WHERE id = $1) AS users,
       (SELECT count(*) FROM maas.threads WHERE user_id = $1) AS threads,
       (SELECT count(*) FROM maas.messages WHERE user_id = $1) AS messages,
       (SELECT count(*) FROM maas.pipeline_runs WHERE user_id = $1) AS pipeline_runs,
       (SELECT count(*) FROM maas.memories WHERE user_id = $1) AS memories,
       (SELECT count(*) FROM maas.llm_calls WHERE user_id = $1) AS llm_calls,
       (SELECT count(*) FROM maas.archive_jobs WHERE user_id = $1) AS archive_jobs

-- name: erase_user
-- Delete user $1; threads, messages, runs (and their events, retrieved memories, calls),
-- memories and archive jobs go with it through ON DELETE CASCADE.
DELETE FROM maas.users WHERE id = $1 RETURNING id

-- name: erase_user_stats
-- The per-user BM25 statistics have no foreign key (the trigger adjusts them during the cascade).
DELETE FROM maas.memory_stats WHERE user_id = $1

-- name: export_user
-- $1 user: the account row without the key hash.
SELECT (to_jsonb(u) - 'api_key_hash')::text FROM maas.users u WHERE u.id = $1

-- name: export_threads
SELECT to_jsonb(t)::text FROM maas.threads t WHERE t.user_id = $1 ORDER BY t.created_at

-- name: export_messages
SELECT to_jsonb(m)::text FROM maas.messages m WHERE m.user_id = $1 ORDER BY m.id

-- name: export_runs
SELECT to_jsonb(r)::text FROM maas.pipeline_runs r WHERE r.user_id = $1 ORDER BY r.created_at

-- name: export_run_events
SELECT to_jsonb(e)::text FROM maas.run_events e
JOIN maas.pipeline_runs r ON r.id = e.run_id WHERE r.user_id = $1 ORDER BY e.id

-- name: export_run_memories
SELECT to_jsonb(rm)::text FROM maas.run_memories rm
JOIN maas.pipeline_runs r ON r.id = rm.run_id WHERE r.user_id = $1 ORDER BY rm.run_id, rm.rank

-- name: export_memories
-- Memories without the derived search vector (the embedding is kept: it is the user's data).
SELECT (to_jsonb(m) - 'search')::text FROM maas.memories m WHERE m.user_id = $1 ORDER BY m.id

-- name: export_llm_calls
SELECT to_jsonb(c)::text FROM maas.llm_calls c WHERE c.user_id = $1 ORDER BY c.id

-- name: export_archive_jobs
SELECT to_jsonb(j)::text FROM maas.archive_jobs j WHERE j.user_id = $1 ORDER BY j.id

-- name: export_claim_turns
-- When the user was last served at each claim queue (fair claiming, migration 0030).
SELECT to_jsonb(t)::text FROM maas.claim_turns t WHERE t.user_id = $1 ORDER BY t.queue

-- name: export_memory_stats
SELECT to_jsonb(s)::text FROM maas.memory_stats s WHERE s.user_id = $1

-- name: export_memory_terms
-- The search postings derived from the memories (lexeme, term frequency, length, validity, and
-- `context`: a word of the turn the memory answers, migration 0039).
SELECT to_jsonb(t)::text FROM maas.memory_terms t WHERE t.user_id = $1 ORDER BY t.memory_id, t.lexeme
