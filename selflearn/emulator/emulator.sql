-- The User Emulator's own records: its runs (progress, summary) and what it expects from each
-- probing question. Schema selflearn (migration 0007).

-- name: emulator_create_run
-- $1 seed, $2 dialogs requested, $3 concurrency, $4 the MaaS URL it talks to.
INSERT INTO selflearn.emulator_runs (seed, dialogs_requested, concurrency, target_url)
VALUES ($1, $2, $3, $4)
RETURNING id, status, started_at

-- name: emulator_progress
-- $1 emulator run: counters so far ($2 dialogs, $3 turns, $4 runs, $5 failures).
UPDATE selflearn.emulator_runs SET dialogs = $2, turns = $3, runs = $4, failures = $5
WHERE id = $1

-- name: emulator_finish
-- $1 emulator run, $2 final status, $3 summary (jsonb), $4 error or null.
UPDATE selflearn.emulator_runs
SET status = $2, summary = $3, error = $4, finished_at = now(),
    dialogs = ($3::jsonb ->> 'dialogs')::int, turns = ($3::jsonb ->> 'turns')::int,
    runs = ($3::jsonb ->> 'runs')::int, failures = ($3::jsonb ->> 'failures')::int
WHERE id = $1 AND status = 'running'
RETURNING id

-- name: emulator_get_run
-- $1 emulator run.
SELECT id, seed, dialogs_requested, concurrency, target_url, status, dialogs, turns, runs,
       failures, summary, error, started_at, finished_at, kind, source
FROM selflearn.emulator_runs WHERE id = $1

-- name: emulator_record_expectation
-- One probing question: $1 emulator run, $2 synthetic user, $3 the probe's pipeline run,
-- $4 persona, $5 scenario, $6 ability, $7 attempt, $8 question, $9 expected answer,
-- $10 planted fact ids, $11 planted {fact id: [message ids]}, $12 retrieved planted fact ids,
-- $13 recall hit (null for abstention), $14 answer hit, $15 the reply.
INSERT INTO selflearn.emulator_expectations
  (emulator_run_id, user_id, run_id, persona, scenario, ability, attempt, question,
   expected_answer, fact_ids, planted, retrieved_fact_ids, recall_hit, answer_hit, answer)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
ON CONFLICT (run_id) DO NOTHING

-- name: emulator_heartbeat
-- $1 the ids of the runs this process is executing: still alive.
UPDATE selflearn.emulator_runs SET heartbeat_at = now()
WHERE id = ANY($1::uuid[]) AND status = 'running'

-- name: emulator_fail_stale
-- Runs still marked running whose process has not beaten for $1 seconds: it died with them.
UPDATE selflearn.emulator_runs
SET status = 'failed', finished_at = now(),
    error = 'interrupted: the process running it stopped (no heartbeat for ' || $1::int || ' s)'
WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => $1::double precision)
RETURNING id

-- name: emulator_create_replay
-- A replay run: $1 seed (the world's, 0 without one), $2 users planned, $3 concurrency, $4 URL,
-- $5 source (world and corpus it replays).
INSERT INTO selflearn.emulator_runs
  (seed, dialogs_requested, concurrency, target_url, kind, source)
VALUES ($1, $2, $3, $4, 'replay', $5)
RETURNING id, status, started_at

-- name: emulator_record_answer
-- One replayed question: $1 emulator run, $2 user, $3 the /v1/context run, $4 arm (or null),
-- $5 conversation, $6 question id, $7 type, $8 question, $9 expected answer, $10 evidence
-- message ids, $11 budget, $12 context holds the answer, $13 best score, $14 context tokens.
INSERT INTO selflearn.replay_answers
  (emulator_run_id, user_id, run_id, arm, conversation, question_id, qtype, question, expected,
   evidence, budget, context_hit, top_score, context_tokens)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (run_id) DO NOTHING

-- name: conversation_upload
-- $1 hash, $2 conversation id, $3 the conversation (LoCoMo format), $4 turns, $5 questions.
-- Idempotent: the same content has the same hash. Returns whether it was new.
INSERT INTO selflearn.conversations (hash, conversation_id, conversation, turns, questions)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (hash) DO NOTHING
RETURNING hash

-- name: conversations_get
-- $1 hashes: the uploaded conversations among them.
SELECT hash, conversation FROM selflearn.conversations WHERE hash = ANY($1::text[])
