-- Read-only queries of the web UI. Every read of user data is scoped by an owner id; where an
-- owner may be null, null means the admin key (read-only, any owner).

-- name: web_run
-- $1 run, $2 owner (null = admin: any owner). The run with its owner's name and its parameters.
SELECT r.id, r.user_id, u.name AS user_name, r.thread_id, r.message_id, r.query, r.status::text,
       r.stop_at::text, r.mode, r.client_type, r.attempts, r.param_version, r.params,
       r.analyzer_output, r.context_text, r.context_tokens, r.max_tokens, r.answer, r.error,
       r.created_at, r.analyzing_at, r.analyzed_at, r.assembling_at, r.ready_at,
       r.responding_at, r.completed_at, r.failed_at, coalesce(r.stage_spans, '{}') AS stage_spans
FROM maas.pipeline_runs r JOIN maas.users u ON u.id = r.user_id
WHERE r.id = $1 AND ($2::uuid IS NULL OR r.user_id = $2)

-- name: web_recent_runs
-- $1 owner (null = admin: every owner), $2 limit, $3 offset; filters, each null = any: $4 user
-- name (the admin's list), $5 client type ('*' = any; null = any but the emulator's), $6 status,
-- $7 thread. Newest first.
SELECT r.id, u.name AS user_name, r.thread_id, r.query, r.status::text, r.mode, r.client_type,
       r.created_at,
       1000 * extract(epoch FROM coalesce(r.completed_at, r.failed_at, r.ready_at) - r.created_at)::float8
         AS total_ms
FROM maas.pipeline_runs r JOIN maas.users u ON u.id = r.user_id
WHERE ($1::uuid IS NULL OR r.user_id = $1)
  AND ($4::text IS NULL OR u.name = $4)
  AND (CASE WHEN $5::text IS NULL THEN r.client_type <> 'emulator'
            ELSE $5 = '*' OR r.client_type = $5 END)
  AND ($6::text IS NULL OR r.status::text = $6)
  AND ($7::uuid IS NULL OR r.thread_id = $7)
ORDER BY r.created_at DESC, r.id
LIMIT $2 OFFSET $3

-- name: web_thread_runs
-- Status of every run of thread $1 owned by $2 (a reloaded page resumes the live ones).
SELECT id, status::text, stop_at::text, error FROM maas.pipeline_runs
WHERE thread_id = $1 AND user_id = $2

-- name: web_thread_memories_used
-- The memories each run of thread $1 (owner $2) put into its context, in rank order.
SELECT rm.run_id, rm.memory_id, rm.rank, rm.score, m.text, m.source_thread_id,
       m.source_message_ids
FROM maas.run_memories rm
JOIN maas.pipeline_runs r ON r.id = rm.run_id AND r.user_id = $2
JOIN maas.memories m ON m.id = rm.memory_id AND m.user_id = $2
WHERE r.thread_id = $1 AND rm.used
ORDER BY rm.run_id, rm.rank

-- name: web_thread_memories
-- Current memories made from thread $1 of owner $2 (what the archivist wrote), newest first.
SELECT id, text, valid_from, source_message_ids FROM maas.memories
WHERE source_thread_id = $1 AND user_id = $2 AND valid_to IS NULL
ORDER BY id DESC LIMIT 200

-- name: web_thread_archive
-- Archive state of thread $1 of owner $2: pending while an archive job is queued or running.
SELECT t.archived_upto, t.closed_at,
       (SELECT max(m.id) FROM maas.messages m WHERE m.thread_id = t.id) AS last_message,
       EXISTS (SELECT 1 FROM maas.archive_jobs j
               WHERE j.thread_id = t.id AND j.status IN ('queued', 'running')) AS pending
FROM maas.threads t WHERE t.id = $1 AND t.user_id = $2

-- name: web_memories_by_id
-- Memories $1 of owner $2 with what the memory browser shows of each (any order).
SELECT m.id, m.text, m.kind, m.slot, m.importance, m.event_time, m.valid_from, m.valid_to,
       m.superseded_by, m.source_message_ids, m.source_thread_id, m.created_at
FROM maas.memories m
WHERE m.id = ANY($1::bigint[]) AND m.user_id = $2
