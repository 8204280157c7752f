-- Queries behind the HTTP API. Every read of user data is scoped by the owner id.

-- name: insert_user
-- $1 name, $2 sha256 of the key, $3 key prefix
INSERT INTO maas.users (name, api_key_hash, key_prefix) VALUES ($1, $2, $3) RETURNING id

-- name: user_by_key_hash
-- $1 sha256 of the presented key; a revoked key finds nobody.
SELECT id, name FROM maas.users WHERE api_key_hash = $1 AND revoked_at IS NULL

-- name: insert_thread
-- $1 user, $2 title
INSERT INTO maas.threads (user_id, title) VALUES ($1, $2) RETURNING id

-- name: own_thread
-- $1 thread, $2 owner
SELECT id, title, closed_at, archived_upto, created_at, last_message_at
FROM maas.threads WHERE id = $1 AND user_id = $2

-- name: insert_message
-- $1 thread, $2 user, $3 role, $4 speaker, $5 content, $6 time (null = now)
INSERT INTO maas.messages (thread_id, user_id, role, speaker, content, created_at)
VALUES ($1, $2, $3, $4, $5, coalesce($6, now()))
RETURNING id

-- name: close_thread
-- $1 thread, $2 owner
UPDATE maas.threads SET closed_at = coalesce(closed_at, now())
WHERE id = $1 AND user_id = $2 RETURNING id

-- name: thread_messages
-- $1 thread, $2 owner, $3 after this message id, $4 at most this many (a page, oldest first)
SELECT id, role, speaker, content, run_id, created_at
FROM maas.messages WHERE thread_id = $1 AND user_id = $2 AND id > $3 ORDER BY id LIMIT $4

-- name: thread_tail
-- $1 thread, $2 owner, $3 how many: the thread's last messages, oldest first
SELECT * FROM (
  SELECT id, role, speaker, content, run_id, created_at
  FROM maas.messages WHERE thread_id = $1 AND user_id = $2 ORDER BY id DESC LIMIT $3
) last ORDER BY id

-- name: list_threads
-- $1 owner, $2 limit
SELECT t.id, t.title, t.closed_at, t.created_at, t.last_message_at,
       (SELECT count(*) FROM maas.messages m WHERE m.thread_id = t.id) AS messages
FROM maas.threads t WHERE t.user_id = $1 ORDER BY t.last_message_at DESC LIMIT $2

-- name: get_run
-- $1 run, $2 owner (null = admin: any owner)
SELECT id, user_id, thread_id, message_id, query, status::text, stop_at::text, mode, client_type,
       attempts, param_version, analyzer_output, context_text, context_tokens, max_tokens,
       answer, error, created_at, analyzing_at, analyzed_at, assembling_at, ready_at,
       responding_at, completed_at, failed_at, coalesce(stage_spans, '{}') AS stage_spans
FROM maas.pipeline_runs WHERE id = $1 AND ($2::uuid IS NULL OR user_id = $2)

-- name: run_events
-- $1 run, events after id $2, $3 owner
SELECT e.id, e.status::text, e.attempt, e.error, e.at
FROM maas.run_events e JOIN maas.pipeline_runs r ON r.id = e.run_id AND r.user_id = $3
WHERE e.run_id = $1 AND e.id > $2 ORDER BY e.id

-- name: run_memories
-- $1 run, $2 owner (of the memories too: nothing of another user can show up here). Each memory
-- by its primary key (LATERAL, fenced): a generic plan joined through the owner's every memory.
SELECT rm.memory_id, rm.rank, rm.score, rm.components, rm.used, rm.tokens, m.text,
       m.source_message_ids, m.source_thread_id, m.event_time
FROM maas.run_memories rm CROSS JOIN LATERAL (
  SELECT * FROM maas.memories x WHERE x.id = rm.memory_id AND x.user_id = $2 OFFSET 0) m
WHERE rm.run_id = $1 ORDER BY rm.rank

-- name: run_trace_memories
-- Every candidate of run $1 (owner $2) in rank order, as run_memories, but a memory deleted since
-- keeps its row (GET /v1/runs/{id}, the run inspector): id, rank, scores, used, tokens and
-- `deleted`; its text and provenance went with it (null, no source ids), so ranks and counts
-- stay what the run saw and nothing of the erased memory is shown.
SELECT rm.memory_id, rm.rank, rm.score, rm.components, rm.used, rm.tokens, m.text,
       coalesce(m.source_message_ids, '{}'::bigint[]) AS source_message_ids, m.source_thread_id,
       m.event_time, m.id IS NULL AS deleted
FROM maas.run_memories rm LEFT JOIN LATERAL (
  SELECT * FROM maas.memories x WHERE x.id = rm.memory_id AND x.user_id = $2 OFFSET 0) m ON true
WHERE rm.run_id = $1 ORDER BY rm.rank

-- name: used_run_memories
-- The packed memories of run $1 (run_memories with `used`): all a chat answer shows. $2 owner.
-- Fenced like run_memories.
SELECT rm.memory_id, rm.rank, rm.score, rm.components, rm.used, rm.tokens, m.text,
       m.source_message_ids, m.source_thread_id, m.event_time
FROM maas.run_memories rm CROSS JOIN LATERAL (
  SELECT * FROM maas.memories x WHERE x.id = rm.memory_id AND x.user_id = $2 OFFSET 0) m
WHERE rm.run_id = $1 AND rm.used ORDER BY rm.rank

-- name: run_llm_calls
-- $1 run, $2 owner
SELECT id, stage, model, prompt_tokens, completion_tokens, ms, outcome, error, created_at
FROM maas.llm_calls WHERE run_id = $1 AND user_id = $2 ORDER BY id

-- name: health_db
SELECT 1

-- name: seed_thread
-- $1 user, $2 title, $3 time of its first message
INSERT INTO maas.threads (user_id, title, created_at, last_message_at, closed_at)
VALUES ($1, $2, $3, $3, now()) RETURNING id

-- name: count_user_memories
-- $1 user
SELECT count(*) FROM maas.memories WHERE user_id = $1 AND valid_to IS NULL

-- name: pending_archive_jobs
-- How many of jobs $1 are still queued or running.
SELECT count(*) FROM maas.archive_jobs WHERE id = ANY($1::bigint[]) AND status IN ('queued', 'running')

-- name: import_messages
-- Append history to thread $1 of user $2: parallel arrays $3 roles, $4 speakers, $5 texts,
-- $6 times (null = now). Ids come back in input order.
INSERT INTO maas.messages (thread_id, user_id, role, speaker, content, created_at)
SELECT $1, $2, r, s, t, coalesce(at, now())
FROM unnest($3::text[], $4::text[], $5::text[], $6::timestamptz[]) WITH ORDINALITY AS x(r, s, t, at, n)
ORDER BY n
RETURNING id

-- name: touch_thread_at
-- $1 thread, $2 latest message time
UPDATE maas.threads SET last_message_at = greatest(last_message_at, $2) WHERE id = $1
