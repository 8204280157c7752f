-- Test runs (#4): a suite run against the service, its throwaway users and per-step results.
-- Owner NULL means the admin key started it; every read by a user is scoped by the owner id.

-- name: insert_test_run
-- $1 owner (null = admin), $2 suite name, $3 suite hash, $4 suite json, $5 mode, $6 step count,
-- $7 process id, $8 heartbeat lease in seconds
INSERT INTO maas.test_runs
  (owner_id, suite_name, suite_hash, suite, mode, steps_total, claimed_by, heartbeat_until)
VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8))
RETURNING id, status, started_at

-- name: count_running_test_runs
-- Running test runs of owner $1 (null = the admin's).
SELECT count(*) FROM maas.test_runs
WHERE status = 'running' AND owner_id IS NOT DISTINCT FROM $1

-- name: insert_test_user
-- A throwaway user of test run $1 named $2 in the suite: $3 display name, $4 key hash, $5 key
-- prefix, $6 pinned mode (null = configured model).
WITH u AS (
  INSERT INTO maas.users (name, api_key_hash, key_prefix, llm_mode)
  VALUES ($3, $4, $5, $6) RETURNING id)
INSERT INTO maas.test_run_users (test_run_id, name, user_id)
SELECT $1, $2, u.id FROM u
RETURNING user_id

-- name: insert_test_step
-- Result of step $2 of test run $1: $3 action, $4 description, $5 user name, $6 thread name,
-- $7 pipeline run, $8 thread, $9 passed, $10 checks json, $11 ms. Counts go up with it.
WITH step AS (
  INSERT INTO maas.test_run_steps
    (test_run_id, idx, action, description, user_name, thread_name, run_id, thread_id, passed,
     checks, ms)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
  RETURNING passed)
UPDATE maas.test_runs t
SET passed = t.passed + (SELECT count(*) FROM step WHERE passed),
    failed = t.failed + (SELECT count(*) FROM step WHERE NOT passed)
WHERE t.id = $1 AND t.status = 'running'
RETURNING t.id

-- name: finish_test_run
-- Test run $1 ends with status $2 ('passed', 'failed' or 'error') and error $3; guarded, so a
-- run already marked interrupted keeps that.
UPDATE maas.test_runs
SET status = $2, error = $3, finished_at = clock_timestamp(), claimed_by = NULL
WHERE id = $1 AND status = 'running'
RETURNING id

-- name: renew_test_runs
-- Heartbeat of the test runs $1 this process is running: lease to now + $2 seconds.
UPDATE maas.test_runs SET heartbeat_until = now() + make_interval(secs => $2)
WHERE id = ANY($1::uuid[]) AND status = 'running'

-- name: interrupt_stale_test_runs
-- Running test runs whose process stopped renewing (crash, kill, restart) end as errors.
UPDATE maas.test_runs
SET status = 'error', finished_at = clock_timestamp(), claimed_by = NULL,
    error = 'interrupted: the process running it (' || coalesce(claimed_by, '?') || ') stopped'
WHERE status = 'running' AND heartbeat_until < now()
RETURNING id

-- name: get_test_run
-- $1 test run, $2 owner; $3 true = the admin: any owner.
SELECT id, owner_id, suite_name, suite_hash, suite, mode, status, error, steps_total, passed,
       failed, started_at, finished_at
FROM maas.test_runs WHERE id = $1 AND ($3 OR owner_id = $2)

-- name: list_test_runs
-- Newest first: owner $1's, or everyone's when $2 (the admin); $3 limit, $4 offset.
SELECT id, owner_id, suite_name, suite_hash, mode, status, error, steps_total, passed, failed,
       started_at, finished_at
FROM maas.test_runs WHERE $2 OR owner_id = $1
ORDER BY started_at DESC, id DESC LIMIT $3 OFFSET $4

-- name: test_run_steps
-- Step results of test run $1 in order.
SELECT idx, action, description, user_name, thread_name, run_id, thread_id, passed, checks, ms,
       finished_at
FROM maas.test_run_steps WHERE test_run_id = $1 ORDER BY idx

-- name: test_run_users
-- The throwaway users of test run $1 by their name in the suite.
SELECT name, user_id FROM maas.test_run_users WHERE test_run_id = $1 ORDER BY name

-- name: run_owner_via_test_run
-- The owner of run $1 when user $2 may read it: a throwaway user of a test run of theirs.
SELECT r.user_id FROM maas.pipeline_runs r
JOIN maas.test_run_users tu ON tu.user_id = r.user_id
JOIN maas.test_runs t ON t.id = tu.test_run_id
WHERE r.id = $1 AND t.owner_id = $2

-- name: archive_job_state
-- Archive job $1 of user $2: where it is and what it made.
SELECT status, memories_created, error FROM maas.archive_jobs WHERE id = $1 AND user_id = $2

-- name: export_test_runs
-- The test runs user $1 started, with their step results (for GET /v1/users/me/export).
SELECT (to_jsonb(t) || jsonb_build_object('steps', coalesce(
         (SELECT jsonb_agg(to_jsonb(s) ORDER BY s.idx) FROM maas.test_run_steps s
          WHERE s.test_run_id = t.id), '[]'::jsonb)))::text
FROM maas.test_runs t WHERE t.owner_id = $1 ORDER BY t.started_at

-- name: export_test_run_users
-- User $1's row as a throwaway user of a test run (if it is one).
SELECT to_jsonb(u)::text FROM maas.test_run_users u WHERE u.user_id = $1
