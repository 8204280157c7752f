-- The pipeline's repository (maas/pipeline/repo.py), the only writer of runs and archive jobs:
-- submission, claims with a lease, guarded commits per stage, retries, releases, crash recovery,
-- idle queueing, retention; and what the stages read of a run.

-- name: submit_run
-- A message and its run in one round trip (migration 0018), for the user whose API key hashes to
-- $2 (the caller is authenticated by the same statement; an unknown or revoked key submits
-- nothing and no row comes back): $1 the new run's id, $3 thread (null = new), $4 title of a new
-- thread, $5 message, $6 mode, $7 stop_at, $8 client_type, $9 idempotency key, $10 max_tokens
-- override, $11 lease seconds of the express lane's claim (null = no claim; a run it will claim is
-- inserted at ANALYZING, migration 0027), $12 worker, $13 the client's responder options (the
-- OpenAI-compatible endpoint's system message and sampling options; migration 0037). Raises
-- MA404 (thread not the user's) or MA409 (idempotency key taken).
SELECT s.run_id, s.thread_id, s.message_id, s.mode, s.lease_token, u.id AS user_id
FROM maas.users u
CROSS JOIN LATERAL maas.submit_run($1, u.id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) s
WHERE u.api_key_hash = $2 AND u.revoked_at IS NULL

-- name: run_by_idempotency_key
-- $1 user, $2 key
SELECT id, thread_id FROM maas.pipeline_runs WHERE user_id = $1 AND idempotency_key = $2

-- name: claim_run
-- Take the next run waiting at $1 (fairly across users: maas.claim_run), move it to $2 under a
-- fresh lease of $3 seconds for worker $4: a claimed run's row (maas.claimed). A run waits while
-- an earlier run of its thread is unfinished (maas.blocking_run). The claim commits without
-- waiting for its WAL flush (set_config ... true: this transaction only): lost in a database
-- crash, it only leaves the run queued, to be claimed again, and the stage's own commit,
-- synchronous, flushes it anyway (WAL is flushed in order). Saves one fsync per stage.
SELECT x.* FROM maas.claim_run($1, $2, $3, $4) c CROSS JOIN LATERAL maas.claimed(c) x

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
-- One call of archive job $2 of user $3 (the archivist logs each as it happens): $1 run (null),
-- $4 the call as a JSON array of one (maas.log_llm_calls). Like a claim, it commits without
-- waiting for its WAL flush: the job's next write (its commit, or the retry/failure of the
-- attempt) is synchronous and flushes it, so a database crash can only lose it together with the
-- attempt it belongs to.
SELECT maas.log_llm_calls($1, $2, $3, $4::text::jsonb), set_config('synchronous_commit', 'off', true)

-- name: insert_llm_calls
-- The calls of a stage attempt that did not commit (maas/pipeline/calls.py): $1 run, $2 user,
-- $3 the calls as a JSON array (maas.log_llm_calls, as the commits write theirs).
SELECT maas.log_llm_calls($1, NULL, $2, $3::text::jsonb)

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
-- The analyzer's commit in one statement (maas.commit_analyze): $1 run, $2 lease token, $3
-- analyzer output, $4 parameter version, $5 parameter values; $6 lease seconds of the assembler's
-- claim (null = no claim), $7 worker; the attempt's LLM calls ($8 user, $9 JSON array).
SELECT * FROM maas.commit_analyze($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb)

-- name: commit_assemble
-- The assembler's commit in one statement (maas.commit_assemble): $1 run, $2 lease token, $3
-- packed context, $4 its token count; the retrieved memories as parallel arrays in rank order: $5
-- ids, $6 scores, $7 components (one JSON array as text), $8 used, $9 tokens; $10 lease seconds
-- of the responder's claim (null = no claim), $11 worker; the attempt's LLM calls ($12 user, $13
-- JSON array); $14 the assembler's spans (JSON array, maas/memory/trace.py). With the
-- responder's claim comes what the responder reads next: `history`, the last $15 messages of
-- the thread before the run's message (thread_history's rows as a JSON array, newest first).
SELECT c.*, CASE WHEN c.lease_token IS NOT NULL THEN coalesce(h.history, '[]') END AS history
FROM maas.commit_assemble($1, $2, $3, $4, $5, $6, $7::text::jsonb, $8, $9, $10, $11, $12,
                          $13::text::jsonb, $14::text::jsonb) c
LEFT JOIN LATERAL (
  SELECT jsonb_agg(jsonb_build_object('role', m.role, 'content', m.content) ORDER BY m.id DESC)
         AS history
  FROM (SELECT x.id, x.role, x.content FROM maas.messages x
        WHERE x.thread_id = c.thread_id AND x.id < c.message_id AND c.lease_token IS NOT NULL
        ORDER BY x.id DESC LIMIT $15) m) h ON true

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

-- name: commit_respond
-- The responder's commit in one statement (maas.commit_respond): $1 thread, $2 user, $3 run, $4
-- lease token, $5 answer, $6 the attempt's LLM calls (JSON array). No row when the guard does not
-- hold. Its row has get_run's columns, so the request that drove the run has its reply.
SELECT true AS finished, NULL::uuid AS lease_token, r.id, r.user_id, r.thread_id, r.message_id,
       r.query, r.status::text, r.stop_at::text, r.mode, r.client_type, r.attempts,
       r.param_version, r.analyzer_output, r.context_text, r.context_tokens, r.max_tokens,
       r.answer, r.error, r.created_at, r.analyzing_at, r.analyzed_at, r.assembling_at,
       r.ready_at, r.responding_at, r.completed_at, r.failed_at
FROM maas.commit_respond($1, $2, $3, $4, $5, $6::text::jsonb) r

-- name: user_llm_mode
-- The mode user $1 is pinned to (NULL = the configured model): a test run's throwaway user.
SELECT llm_mode FROM maas.users WHERE id = $1

-- name: claim_archive_job
-- The next archive job, leased to worker $2 for $1 seconds: fairly across users, as claim_run
-- (migration 0030): the oldest claimable job of the user served least recently at the 'archive'
-- queue (a skip scan of archive_jobs_queue_idx finds the waiting users), one job of a thread at
-- a time (its slices read from the thread's archived mark; archive_jobs_running_idx). The
-- candidates are MATERIALIZED: with statistics that lag a fast-growing queue the planner ran them
-- once per queued job (1,500 queued turn jobs: 18 s per claim, and archiving stood still).
WITH RECURSIVE waiting (user_id) AS (
  (SELECT j.user_id FROM maas.archive_jobs j WHERE j.status = 'queued'
   ORDER BY j.user_id LIMIT 1)
  UNION ALL
  SELECT (SELECT j.user_id FROM maas.archive_jobs j
          WHERE j.status = 'queued' AND j.user_id > w.user_id ORDER BY j.user_id LIMIT 1)
  FROM waiting w WHERE w.user_id IS NOT NULL
), turns AS MATERIALIZED (
  SELECT w.user_id,
         coalesce((SELECT t.served FROM maas.claim_turns t
                   WHERE t.queue = 'archive' AND t.user_id = w.user_id), 0) AS served
  FROM waiting w WHERE w.user_id IS NOT NULL
  ORDER BY served
), candidates AS MATERIALIZED (  -- computed once, not once per queued job
  SELECT c.id, c.place, u.served
  FROM turns u CROSS JOIN LATERAL (
    SELECT j.id, row_number() OVER (ORDER BY j.id) AS place
    FROM (SELECT x.id, x.thread_id, x.next_attempt_at FROM maas.archive_jobs x
          WHERE x.status = 'queued' AND x.user_id = u.user_id ORDER BY x.id LIMIT 32) j
    WHERE j.next_attempt_at <= now()
      AND NOT EXISTS (SELECT 1 FROM maas.archive_jobs o
                      WHERE o.thread_id = j.thread_id AND o.status = 'running')
    ORDER BY j.id LIMIT 8) c
  LIMIT 64
), next AS (
  SELECT j.id FROM candidates c JOIN maas.archive_jobs j ON j.id = c.id
  WHERE j.status = 'queued' AND j.next_attempt_at <= now()
  ORDER BY c.place, c.served, c.id
  LIMIT 1
  FOR UPDATE OF j SKIP LOCKED
), claimed AS (
  UPDATE maas.archive_jobs j
  SET status = 'running', attempts = j.attempts + 1, lease_token = gen_random_uuid(),
      claimed_by = $2, claimed_until = now() + make_interval(secs => $1)
  FROM next WHERE j.id = next.id
  RETURNING j.id, j.thread_id, j.user_id, j.upto_message_id, j.attempts, j.lease_token, j.scope
)
SELECT c.*, maas.take_turn('archive', c.user_id) AS turn FROM claimed c

-- name: archive_slice
-- The next slice of thread $1 to archive, up to message $2, for a job of scope $5: its messages
-- after the thread's mark of that scope (archived_upto for a turn job, consolidated_upto for a
-- dialog pass: migration 0038) in order, at most $3 of them and no more characters than $4 (but
-- at least one message); each row also carries the mark the slice starts from (`mark`) and the
-- archived mark (`archived`). With nothing left, one row with the marks and no message (id null).
SELECT t.mark, t.archived, m.id, m.role, m.speaker, m.content, m.created_at
FROM (SELECT th.id, CASE WHEN $5 = 'turn' THEN th.archived_upto ELSE th.consolidated_upto END
               AS mark, th.archived_upto AS archived
      FROM maas.threads th WHERE th.id = $1) t
LEFT JOIN LATERAL (
  SELECT s.id, s.role, s.speaker, s.content, s.created_at
  FROM (SELECT x.id, x.role, x.speaker, x.content, x.created_at,
               sum(length(x.content)) OVER (ORDER BY x.id) - length(x.content) AS before
        FROM maas.messages x
        WHERE x.thread_id = t.id AND x.id > t.mark AND x.id <= $2
        ORDER BY x.id LIMIT $3) s
  WHERE s.before < $4) m ON true
ORDER BY m.id

-- name: message_before
-- The message of thread $1 a slice starting after mark $2 follows (the one with id $2 or the
-- closest before it): what the slice's first message may answer (archivist.context_mix).
SELECT m.id, m.role, m.speaker, m.content, m.created_at
FROM maas.messages m
WHERE m.thread_id = $1 AND m.id <= $2
ORDER BY m.id DESC
LIMIT 1

-- name: finish_archive_slice
-- $1 job, $2 lease token, $3 memories made, $4 the slice's last message (null: none was left),
-- $5 the mark (archived_upto, or a dialog pass's consolidated_upto) the slice started from.
-- Advances that mark (a pass's also archived_upto) to the slice's end; the job is done when it
-- reaches its last message, else queued for its next slice (attempts and rounds start again).
-- Nothing happens, nothing comes back, when the lease was lost or the mark moved meanwhile.
-- The thread row is locked first (`locked`, which `done` waits for), the order a close takes
-- (close, then queue a job): the other order deadlocked with a close (seen in CI).
WITH locked AS MATERIALIZED (
  SELECT th.id FROM maas.threads th JOIN maas.archive_jobs j ON j.thread_id = th.id
  WHERE j.id = $1
    AND CASE WHEN j.scope = 'turn' THEN th.archived_upto ELSE th.consolidated_upto END = $5
  FOR NO KEY UPDATE OF th),
done AS (
  UPDATE maas.archive_jobs j
  SET status = CASE WHEN coalesce($4, j.upto_message_id) >= j.upto_message_id
                    THEN 'done' ELSE 'queued' END,
      attempts = CASE WHEN coalesce($4, j.upto_message_id) >= j.upto_message_id
                      THEN j.attempts ELSE 0 END,
      finished_at = CASE WHEN coalesce($4, j.upto_message_id) >= j.upto_message_id
                         THEN now() END,
      memories_created = j.memories_created + $3, rounds = 0, error = NULL,
      next_attempt_at = now(), lease_token = NULL, claimed_by = NULL, claimed_until = NULL
  WHERE j.id = $1 AND j.status = 'running' AND j.lease_token = $2
    AND EXISTS (SELECT 1 FROM locked)
  RETURNING j.thread_id, j.scope)
UPDATE maas.threads t
SET archived_upto = greatest(t.archived_upto, coalesce($4, $5)),
    consolidated_upto = CASE WHEN done.scope = 'turn' THEN t.consolidated_upto
                             ELSE greatest(t.consolidated_upto, coalesce($4, $5)) END
FROM done WHERE t.id = done.thread_id
RETURNING t.id

-- name: retry_or_fail_archive_job
-- $1 job, $2 lease, $3 error, $4 delay seconds, $5 max attempts. A job whose attempts are used up
-- is failed, and queued again (revive_failed_archive_jobs) after maas.archive_retry_after($6
-- seconds, doubling with each round, at most a day): a failed range is never given up.
UPDATE maas.archive_jobs
SET status = CASE WHEN attempts >= $5 THEN 'failed' ELSE 'queued' END,
    next_attempt_at = CASE WHEN attempts >= $5 THEN now() + maas.archive_retry_after(rounds, $6)
                           ELSE now() + make_interval(secs => $4) END,
    error = $3, finished_at = CASE WHEN attempts >= $5 THEN now() END,
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
-- $1 max attempts, $2 retry seconds of a failed job (see retry_or_fail_archive_job)
UPDATE maas.archive_jobs
SET status = CASE WHEN attempts >= $1 THEN 'failed' ELSE 'queued' END,
    next_attempt_at = CASE WHEN attempts >= $1 THEN now() + maas.archive_retry_after(rounds, $2)
                           ELSE next_attempt_at END,
    finished_at = CASE WHEN attempts >= $1 THEN now() END,
    error = 'lease expired (worker ' || coalesce(claimed_by, '?') || ' stopped or stalled)',
    lease_token = NULL, claimed_by = NULL, claimed_until = NULL
WHERE status = 'running' AND claimed_until < now()
RETURNING id

-- name: revive_failed_archive_jobs
-- Failed jobs whose retry time has come go back to the queue with their attempts renewed.
UPDATE maas.archive_jobs
SET status = 'queued', attempts = 0, rounds = rounds + 1, finished_at = NULL
WHERE status = 'failed' AND next_attempt_at <= now()
RETURNING id

-- name: queue_archive_job
-- The dialog pass (migration 0038) of thread $1 of user $2 up to its latest message, for reason
-- $3 (closed, import): every message since the thread's last pass, including those per-turn
-- archiving already archived; nothing new since the last pass = no job. When a pass of the same
-- range exists already, it is the one returned: queued or running, or a failed one, queued again
-- (closing again retries it). So the caller can wait for the job that archives the thread.
INSERT INTO maas.archive_jobs (thread_id, user_id, upto_message_id, reason)
SELECT t.id, t.user_id, last.id, $3
FROM maas.threads t
CROSS JOIN LATERAL (SELECT max(id) AS id FROM maas.messages WHERE thread_id = t.id) last
WHERE t.id = $1 AND t.user_id = $2 AND last.id > t.consolidated_upto
ON CONFLICT (thread_id, upto_message_id, scope) DO UPDATE
SET status = CASE WHEN archive_jobs.status = 'failed' THEN 'queued' ELSE archive_jobs.status END,
    attempts = CASE WHEN archive_jobs.status = 'failed' THEN 0 ELSE archive_jobs.attempts END,
    rounds = CASE WHEN archive_jobs.status = 'failed' THEN 0 ELSE archive_jobs.rounds END,
    finished_at = CASE WHEN archive_jobs.status = 'failed' THEN NULL
                       ELSE archive_jobs.finished_at END,
    next_attempt_at = CASE WHEN archive_jobs.status = 'running' THEN archive_jobs.next_attempt_at
                           ELSE least(archive_jobs.next_attempt_at, now()) END
WHERE archive_jobs.status <> 'done'
RETURNING id

-- name: queue_idle_threads
-- Open threads idle for $1 seconds with messages since their last dialog pass get one.
INSERT INTO maas.archive_jobs (thread_id, user_id, upto_message_id, reason)
SELECT t.id, t.user_id, last.id, 'idle'
FROM maas.threads t
CROSS JOIN LATERAL (SELECT max(id) AS id FROM maas.messages WHERE thread_id = t.id) last
WHERE t.closed_at IS NULL AND t.last_message_at < now() - make_interval(secs => $1)
  AND last.id > t.consolidated_upto
ON CONFLICT (thread_id, upto_message_id, scope) DO NOTHING
RETURNING id

-- name: lock_memory_of
-- $1 memory, $2 owner: its text and speaker, locked until the caller's delete_memory.
SELECT text, speaker FROM maas.memories WHERE id = $1 AND user_id = $2 FOR UPDATE

-- name: delete_memory
-- $1 memory, $2 owner, $3 the text its packed line shows under its speaker's header (null: none,
-- budget.split_speaker). Its text also goes from what was made of it: wherever the exact text
-- (or $3) occurs in the owner's runs' packed contexts and answers, and in the assistant messages
-- that are those answers (the next chats' history), it becomes '[deleted memory]'. An LLM's
-- paraphrase cannot be found and stays, as do the user's own messages the memory came from
-- (docs/api.md).
WITH gone AS (
  DELETE FROM maas.memories WHERE id = $1 AND user_id = $2
  RETURNING id, text, coalesce($3::text, text) AS shown
), runs AS (
  UPDATE maas.pipeline_runs r
  SET context_text = replace(replace(r.context_text, g.text, '[deleted memory]'), g.shown,
                             '[deleted memory]'),
      answer = replace(replace(r.answer, g.text, '[deleted memory]'), g.shown, '[deleted memory]')
  FROM gone g
  WHERE r.user_id = $2 AND (strpos(r.context_text, g.shown) > 0 OR strpos(r.answer, g.shown) > 0)
  RETURNING r.id
), answers AS (
  UPDATE maas.messages m
  SET content = replace(replace(m.content, g.text, '[deleted memory]'), g.shown, '[deleted memory]')
  FROM gone g
  WHERE m.run_id IN (SELECT id FROM runs) AND m.role = 'assistant' AND strpos(m.content, g.shown) > 0
)
SELECT id FROM gone
