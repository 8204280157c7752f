-- Reads and effects of the agents (analyzer, assembler, responder, archivist).

-- name: used_memories
-- The packed memories of run $1, in rank order, each by its primary key (LATERAL, fenced: a
-- generic plan must not hash-join the memories table).
SELECT m.text, m.event_time, m.created_at
FROM maas.run_memories rm CROSS JOIN LATERAL (
  SELECT x.text, x.event_time, x.created_at FROM maas.memories x WHERE x.id = rm.memory_id
  OFFSET 0) m
WHERE rm.run_id = $1 AND rm.used
ORDER BY rm.rank

-- name: thread_history
-- The last $3 messages of thread $1 before message $2, newest first.
SELECT role, content FROM maas.messages
WHERE thread_id = $1 AND id < $2
ORDER BY id DESC LIMIT $3

-- name: finish_respond
-- The responder's commit in one statement: run $3 (lease token $4) becomes COMPLETED with answer
-- $5, which is also written as the assistant's message in thread $1 of user $2 (a second insert
-- for the same run is a no-op) and touches the thread. Nothing happens, and nothing comes back,
-- when the guard does not hold (the lease was lost). The last stage: it claims nothing; it
-- returns the finished run's columns of get_run, so the request that drove it has its reply. The
-- attempt's LLM calls ($6, a JSON array, see insert_llm_calls) are written by the same statement.
WITH logged AS (
  INSERT INTO maas.llm_calls
    (run_id, user_id, stage, model, prompt_tokens, completion_tokens, ms, outcome, error)
  SELECT $3, $2, c.* FROM maas.llm_call_rows($6::text::jsonb) c
), done AS (
  UPDATE maas.pipeline_runs
  SET status = 'COMPLETED', answer = $5,
      attempts = 0, lease_token = NULL, claimed_by = NULL, claimed_until = NULL, error = NULL
  WHERE id = $3 AND status = 'RESPONDING' AND lease_token = $4
  RETURNING id, user_id, thread_id, message_id, query, status::text, stop_at::text, mode,
            client_type, attempts, param_version, analyzer_output, context_text, context_tokens,
            max_tokens, answer, error, created_at, analyzing_at, analyzed_at, assembling_at,
            ready_at, responding_at, completed_at, failed_at
), answer AS (
  INSERT INTO maas.messages (thread_id, user_id, run_id, role, content)
  SELECT $1, $2, done.id, 'assistant', $5 FROM done WHERE $1::uuid IS NOT NULL
  ON CONFLICT (run_id) WHERE role = 'assistant' DO NOTHING
), touched AS (
  UPDATE maas.threads SET last_message_at = now()
  WHERE id = $1 AND EXISTS (SELECT 1 FROM done)
)
SELECT true AS finished, NULL::uuid AS lease_token, done.* FROM done

-- name: claim_archive_job
-- The oldest queued job, leased to worker $2 for $1 seconds.
WITH next AS (
  SELECT id FROM maas.archive_jobs
  WHERE status = 'queued' AND next_attempt_at <= now()
  ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
UPDATE maas.archive_jobs j
SET status = 'running', attempts = j.attempts + 1, lease_token = gen_random_uuid(),
    claimed_by = $2, claimed_until = now() + make_interval(secs => $1)
FROM next WHERE j.id = next.id
RETURNING j.id, j.thread_id, j.user_id, j.upto_message_id, j.attempts, j.lease_token

-- name: archive_messages
-- Messages of thread $1 not yet archived, up to message $2.
SELECT m.id, m.role, m.speaker, m.content, m.created_at
FROM maas.messages m JOIN maas.threads t ON t.id = m.thread_id
WHERE m.thread_id = $1 AND m.id > t.archived_upto AND m.id <= $2
ORDER BY m.id

-- name: finish_archive_job
-- $1 job, $2 lease token, $3 memories created. Advances the thread's archived mark. The thread row
-- is locked first (`locked`, which `done` waits for), the order closing a thread takes (close, then
-- queue a job): job-then-thread let a close of the same thread wait on the job's row while it
-- held the thread, and the two deadlocked (seen in CI).
WITH locked AS MATERIALIZED (
  SELECT th.id FROM maas.threads th JOIN maas.archive_jobs j ON j.thread_id = th.id
  WHERE j.id = $1 FOR NO KEY UPDATE OF th),
done AS (
  UPDATE maas.archive_jobs
  SET status = 'done', memories_created = $3, finished_at = now(), error = NULL,
      lease_token = NULL, claimed_by = NULL, claimed_until = NULL
  WHERE id = $1 AND status = 'running' AND lease_token = $2 AND EXISTS (SELECT 1 FROM locked)
  RETURNING thread_id, upto_message_id)
UPDATE maas.threads t SET archived_upto = greatest(t.archived_upto, done.upto_message_id)
FROM done WHERE t.id = done.thread_id
RETURNING t.id

-- name: retry_or_fail_archive_job
-- $1 job, $2 lease, $3 error, $4 delay seconds, $5 max attempts
UPDATE maas.archive_jobs
SET status = CASE WHEN attempts >= $5 THEN 'failed' ELSE 'queued' END,
    next_attempt_at = now() + make_interval(secs => $4), error = $3,
    finished_at = CASE WHEN attempts >= $5 THEN now() END,
    lease_token = NULL, claimed_by = NULL, claimed_until = NULL
WHERE id = $1 AND lease_token = $2
RETURNING status

-- name: release_archive_job
-- $1 job, $2 lease
UPDATE maas.archive_jobs
SET status = 'queued', attempts = greatest(attempts - 1, 0),
    lease_token = NULL, claimed_by = NULL, claimed_until = NULL
WHERE id = $1 AND lease_token = $2

-- name: requeue_stale_archive_jobs
-- $1 max attempts
UPDATE maas.archive_jobs
SET status = CASE WHEN attempts >= $1 THEN 'failed' ELSE 'queued' END,
    error = 'lease expired (worker ' || coalesce(claimed_by, '?') || ' stopped or stalled)',
    lease_token = NULL, claimed_by = NULL, claimed_until = NULL
WHERE status = 'running' AND claimed_until < now()
RETURNING id

-- name: queue_archive_job
-- Archive thread $1 of user $2 up to its latest message, for reason $3; nothing new = no job.
INSERT INTO maas.archive_jobs (thread_id, user_id, upto_message_id, reason)
SELECT t.id, t.user_id, last.id, $3
FROM maas.threads t
CROSS JOIN LATERAL (SELECT max(id) AS id FROM maas.messages WHERE thread_id = t.id) last
WHERE t.id = $1 AND t.user_id = $2 AND last.id > t.archived_upto
ON CONFLICT (thread_id, upto_message_id) DO NOTHING
RETURNING id

-- name: queue_idle_threads
-- Open threads idle for $1 seconds with unarchived messages get a job.
INSERT INTO maas.archive_jobs (thread_id, user_id, upto_message_id, reason)
SELECT t.id, t.user_id, last.id, 'idle'
FROM maas.threads t
CROSS JOIN LATERAL (SELECT max(id) AS id FROM maas.messages WHERE thread_id = t.id) last
WHERE t.closed_at IS NULL AND t.last_message_at < now() - make_interval(secs => $1)
  AND last.id > t.archived_upto
ON CONFLICT (thread_id, upto_message_id) DO NOTHING
RETURNING id
