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
-- The next archive job, leased to worker $2 for $1 seconds: fairly across users, as claim_run
-- (migration 0030): the oldest claimable job of the user served least recently at the 'archive'
-- queue (a skip scan of archive_jobs_queue_idx finds the waiting users), one job of a thread at
-- a time (its slices read from the thread's archived mark).
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
), candidates AS (
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
  RETURNING j.id, j.thread_id, j.user_id, j.upto_message_id, j.attempts, j.lease_token
)
SELECT c.*, maas.take_turn('archive', c.user_id) AS turn FROM claimed c

-- name: archive_slice
-- The next slice of thread $1 to archive, up to message $2: its unarchived messages in order, at
-- most $3 of them and no more characters than $4 (but at least one message); each row also
-- carries the thread's archived mark the slice starts from (`mark`). With nothing left, one row
-- with the mark and no message (id null).
SELECT t.archived_upto AS mark, m.id, m.role, m.speaker, m.content, m.created_at
FROM maas.threads t
LEFT JOIN LATERAL (
  SELECT s.id, s.role, s.speaker, s.content, s.created_at
  FROM (SELECT x.id, x.role, x.speaker, x.content, x.created_at,
               sum(length(x.content)) OVER (ORDER BY x.id) - length(x.content) AS before
        FROM maas.messages x
        WHERE x.thread_id = t.id AND x.id > t.archived_upto AND x.id <= $2
        ORDER BY x.id LIMIT $3) s
  WHERE s.before < $4) m ON true
WHERE t.id = $1
ORDER BY m.id

-- name: finish_archive_slice
-- $1 job, $2 lease token, $3 memories the slice created, $4 the slice's last message (null: none
-- was left), $5 the archived mark the slice started from. Advances the thread's mark to the
-- slice's end; the job is done when that reaches its last message, else it goes back to the
-- queue for its next slice (attempts and rounds start again: it made progress). Nothing happens,
-- and nothing comes back, when the lease was lost or the mark moved meanwhile (another job of the
-- thread archived it). The thread row is locked first (`locked`, which `done` waits for), the
-- order closing a thread takes (close, then queue a job): job-then-thread let a close of the same
-- thread wait on the job's row while it held the thread, and the two deadlocked (seen in CI).
WITH locked AS MATERIALIZED (
  SELECT th.id FROM maas.threads th JOIN maas.archive_jobs j ON j.thread_id = th.id
  WHERE j.id = $1 AND th.archived_upto = $5 FOR NO KEY UPDATE OF th),
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
  RETURNING j.thread_id)
UPDATE maas.threads t SET archived_upto = greatest(t.archived_upto, coalesce($4, $5))
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
-- Archive thread $1 of user $2 up to its latest message, for reason $3; nothing new = no job. A
-- job of the same range that failed is queued again (closing again retries it) and returned.
INSERT INTO maas.archive_jobs (thread_id, user_id, upto_message_id, reason)
SELECT t.id, t.user_id, last.id, $3
FROM maas.threads t
CROSS JOIN LATERAL (SELECT max(id) AS id FROM maas.messages WHERE thread_id = t.id) last
WHERE t.id = $1 AND t.user_id = $2 AND last.id > t.archived_upto
ON CONFLICT (thread_id, upto_message_id) DO UPDATE
SET status = 'queued', attempts = 0, rounds = 0, next_attempt_at = now(), finished_at = NULL
WHERE archive_jobs.status = 'failed'
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
