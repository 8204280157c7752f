-- Pipeline runs: creation, claims with a lease, guarded transitions, crash recovery.

-- name: submit_run
-- A message and its run in one round trip (migration 0018), for the user whose API key hashes to
-- $2 (the caller is authenticated by the same statement; an unknown or revoked key submits
-- nothing and no row comes back): $1 the new run's id, $3 thread (null = new), $4 title of a new
-- thread, $5 message, $6 mode, $7 stop_at, $8 client_type, $9 idempotency key, $10 max_tokens
-- override, $11 lease seconds of the express lane's claim (null = no claim; a run it will claim is
-- inserted at ANALYZING, migration 0027), $12 worker. Raises
-- MA404 (thread not the user's) or MA409 (idempotency key taken).
SELECT s.run_id, s.thread_id, s.message_id, s.mode, s.lease_token, u.id AS user_id
FROM maas.users u
CROSS JOIN LATERAL maas.submit_run($1, u.id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) s
WHERE u.api_key_hash = $2 AND u.revoked_at IS NULL

-- name: run_by_idempotency_key
-- $1 user, $2 key
SELECT id, thread_id FROM maas.pipeline_runs WHERE user_id = $1 AND idempotency_key = $2

-- name: claim_run
-- Take the next run waiting at $1 (fairly across users: maas.claim_run, migration 0030), move it
-- to $2 under a fresh lease of $3 seconds for worker $4. A run waits while an earlier run of its
-- thread is unfinished, so a thread answers in order. The claim commits without waiting for its
-- WAL flush (set_config ... true: this transaction only): lost in a database crash, it only leaves
-- the run queued, to be claimed again, and the stage's own commit, synchronous, flushes it anyway
-- (WAL is flushed in order). Saves one fsync per stage.
SELECT c.id, c.user_id, c.thread_id, c.message_id, c.query, c.mode, c.stop_at::text,
       c.max_tokens, c.attempts, c.lease_token, c.params, c.param_version, c.analyzer_output,
       c.context_text
FROM maas.claim_run($1, $2, $3, $4) c

-- name: renew_run_lease
-- Heartbeat of a working stage: push the lease of run $1 (token $2) to now + $3 seconds.
-- Nothing comes back when the lease was lost (requeued, taken over, or the run moved on).
UPDATE maas.pipeline_runs SET claimed_until = now() + make_interval(secs => $3)
WHERE id = $1 AND lease_token = $2
RETURNING id

-- name: retry_or_fail_run
-- A stage failed: back to $3 (its queue status) after $5 seconds, or FAILED once attempts reach
-- $6. $1 run, $2 lease token, $4 error.
UPDATE maas.pipeline_runs
SET status = CASE WHEN attempts >= $6 THEN 'FAILED' ELSE $3::text::maas.run_status END,
    next_attempt_at = now() + make_interval(secs => $5),
    error = $4, lease_token = NULL, claimed_by = NULL, claimed_until = NULL
WHERE id = $1 AND lease_token = $2
RETURNING status::text

-- name: release_run
-- Shutdown: give the claim back without counting the attempt. $1 run, $2 lease, $3 queue status.
UPDATE maas.pipeline_runs
SET status = $3::text::maas.run_status, attempts = greatest(attempts - 1, 0),
    lease_token = NULL, claimed_by = NULL, claimed_until = NULL
WHERE id = $1 AND lease_token = $2
RETURNING id

-- name: requeue_stale_runs
-- Leases that ran out (a crashed or paused worker): back to the queue, or FAILED once attempts
-- reach $1.
UPDATE maas.pipeline_runs
SET status = CASE
      WHEN attempts >= $1 THEN 'FAILED'::maas.run_status
      WHEN status = 'ANALYZING' THEN 'NEW'::maas.run_status
      WHEN status = 'ASSEMBLING' THEN 'ANALYZED'::maas.run_status
      ELSE 'READY'::maas.run_status END,
    error = 'lease expired (worker ' || coalesce(claimed_by, '?') || ' stopped or stalled)',
    lease_token = NULL, claimed_by = NULL, claimed_until = NULL
WHERE status IN ('ANALYZING', 'ASSEMBLING', 'RESPONDING') AND claimed_until < now()
RETURNING id

-- name: insert_llm_call
-- $1 run, $2 archive job, $3 user, $4 stage, $5 model, $6 prompt tokens, $7 completion tokens,
-- $8 ms, $9 outcome, $10 error. Like a claim, it commits without waiting for its WAL flush: the
-- stage's next write (its commit, or the retry/failure of the attempt) is synchronous and flushes
-- it, so a database crash can only lose it together with the attempt it belongs to.
INSERT INTO maas.llm_calls
  (run_id, archive_job_id, user_id, stage, model, prompt_tokens, completion_tokens, ms, outcome,
   error)
SELECT $1::uuid, $2::bigint, $3::uuid, $4::text, $5::text, $6::integer, $7::integer, $8::real,
       $9::text, $10::text
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous_commit

-- name: insert_llm_calls
-- The calls of a stage attempt that did not commit (maas/pipeline/calls.py): $1 run, $2 user,
-- $3 the calls as a JSON array (maas.llm_call_rows). The commit statements write them likewise.
INSERT INTO maas.llm_calls
  (run_id, user_id, stage, model, prompt_tokens, completion_tokens, ms, outcome, error)
SELECT $1, $2, c.* FROM maas.llm_call_rows($3::text::jsonb) c

-- name: run_status
-- $1 run
SELECT status::text, stop_at::text, answer, error FROM maas.pipeline_runs WHERE id = $1

-- name: prune_finished_runs
-- Retention: finished runs (a /v1/context run finishes at READY, its stop_at) and their logs
-- older than $1 days; the predicate of runs_finished_idx (migration 0031), word for word.
DELETE FROM maas.pipeline_runs
WHERE (status IN ('COMPLETED', 'FAILED') OR status = stop_at)
  AND created_at < now() - $1::float8 * interval '1 day'

-- name: prune_llm_calls
-- Retention for calls not tied to a run (archivist) older than $1 days.
DELETE FROM maas.llm_calls WHERE run_id IS NULL AND created_at < now() - $1::float8 * interval '1 day'

-- name: renew_archive_lease
-- Heartbeat of a running archive job $1 (token $2): lease to now + $3 seconds; empty = lost.
UPDATE maas.archive_jobs SET claimed_until = now() + make_interval(secs => $3)
WHERE id = $1 AND lease_token = $2 AND status = 'running'
RETURNING id

-- name: queue_depth
-- Unfinished runs by status (the queues and the in-flight stages), for load reports and ops; a
-- /v1/context run at READY has finished (stop_at).
SELECT status::text, count(*) AS n FROM maas.pipeline_runs
WHERE status IN ('NEW', 'ANALYZING', 'ANALYZED', 'ASSEMBLING', 'READY', 'RESPONDING')
  AND status <> stop_at
GROUP BY status

-- name: commit_analyze
-- The analyzer's commit in one statement (migration 0019): $1 run, $2 lease token, $3 analyzer
-- output, $4 parameter version, $5 parameter values; $6 lease seconds of the assembler's claim
-- (null = no claim), $7 worker; the attempt's LLM calls ($8 user, $9 JSON array, see
-- insert_llm_calls) are written by the same statement.
WITH logged AS (
  INSERT INTO maas.llm_calls
    (run_id, user_id, stage, model, prompt_tokens, completion_tokens, ms, outcome, error)
  SELECT $1, $8, c.* FROM maas.llm_call_rows($9::text::jsonb) c)
SELECT * FROM maas.commit_analyze($1, $2, $3, $4, $5, $6, $7)

-- name: commit_assemble
-- The assembler's commit in one statement (migration 0019): $1 run, $2 lease token, $3 packed
-- context, $4 its token count; the retrieved memories as parallel arrays in rank order: $5 ids,
-- $6 scores, $7 components (one JSON array as text), $8 used, $9 tokens; $10 lease seconds of
-- the responder's claim (null = no claim), $11 worker; the attempt's LLM calls ($12 user, $13
-- JSON array, see insert_llm_calls) are written by the same statement. With the responder's
-- claim comes what the responder reads next: `history`, the last $14 messages of the thread
-- before the run's message (thread_history's rows as a JSON array, newest first).
WITH logged AS (
  INSERT INTO maas.llm_calls
    (run_id, user_id, stage, model, prompt_tokens, completion_tokens, ms, outcome, error)
  SELECT $1, $12, c.* FROM maas.llm_call_rows($13::text::jsonb) c)
SELECT c.*, CASE WHEN c.lease_token IS NOT NULL THEN coalesce(h.history, '[]') END AS history
FROM maas.commit_assemble($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9, $10, $11) c
LEFT JOIN LATERAL (
  SELECT jsonb_agg(jsonb_build_object('role', m.role, 'content', m.content) ORDER BY m.id DESC)
         AS history
  FROM (SELECT x.id, x.role, x.content FROM maas.messages x
        WHERE x.thread_id = c.thread_id AND x.id < c.message_id AND c.lease_token IS NOT NULL
        ORDER BY x.id DESC LIMIT $14) m) h ON true
