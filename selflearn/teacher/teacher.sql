-- The Teacher: experiments, the data of each arm (sensor tables + emulator expectations only),
-- judgements and verdicts (migration 0008).

-- name: teacher_create_experiment
-- $1 name, $2 spec (jsonb, frozen), $3 spec hash, $4 mode (paired / split), $5 id.
INSERT INTO selflearn.experiments (name, spec, spec_hash, mode, id)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, name, spec_hash, mode, status, started_at

-- name: teacher_set_live_arm
-- $1 experiment, $2 arm whose parameters new runs get (null: none).
UPDATE selflearn.experiments SET live_arm = $2 WHERE id = $1 AND status = 'running'
RETURNING id

-- name: teacher_set_emulator_run
-- $1 experiment, $2 arm, $3 the emulator run that played it.
UPDATE selflearn.experiments
SET baseline_emulator_run = CASE WHEN $2 = 'baseline' THEN $3 ELSE baseline_emulator_run END,
    variant_emulator_run = CASE WHEN $2 = 'variant' THEN $3 ELSE variant_emulator_run END
WHERE id = $1

-- name: teacher_finish_experiment
-- $1 experiment, $2 final status (done / failed / stopped), $3 error or null.
UPDATE selflearn.experiments
SET status = $2, error = $3, live_arm = NULL, finished_at = now()
WHERE id = $1 AND status = 'running'
RETURNING id

-- name: teacher_get_experiment
-- $1 experiment.
SELECT x.id, x.name, x.spec, x.spec_hash, x.mode, x.status, x.live_arm, x.baseline_emulator_run,
       x.variant_emulator_run, x.error, x.started_at, x.finished_at, x.source,
       (SELECT jsonb_object_agg(p.arm, p.version) FROM selflearn.experiment_parameters p
        WHERE p.experiment_id = x.id AND p.arm IS NOT NULL) AS versions
FROM selflearn.experiments x WHERE x.id = $1

-- name: teacher_list_experiments
-- Newest first: $1 limit, $2 offset; with the latest verdict of each.
SELECT x.id, x.name, x.spec_hash, x.mode, x.status, x.started_at, x.finished_at,
       (SELECT v.verdict FROM selflearn.verdicts v WHERE v.experiment_id = x.id
        ORDER BY v.id DESC LIMIT 1) AS verdict
FROM selflearn.experiments x
ORDER BY x.started_at DESC
LIMIT $1 OFFSET $2

-- name: teacher_probes
-- First-attempt probes of emulator run $1 that the sensor recorded, with the run's facts.
SELECT e.run_id, e.user_id, e.persona, e.scenario, e.ability, e.fact_ids, e.planted, e.answer_hit
FROM selflearn.emulator_expectations e
JOIN selflearn.sensor_events s ON s.run_id = e.run_id
WHERE e.emulator_run_id = $1 AND e.attempt = 1
ORDER BY e.id

-- name: teacher_probe_retrievals
-- Retrieved memories (sensor copy, with provenance) of the first-attempt probes of emulator run $1.
-- One row per run: `used` and `sources` (JSON array of source id arrays) in rank order.
SELECT r.run_id, r.used, r.sources
FROM selflearn.emulator_expectations e
JOIN selflearn.sensor_retrievals r ON r.run_id = e.run_id
WHERE e.emulator_run_id = $1 AND e.attempt = 1

-- name: teacher_episode_runs
-- Every recorded run of the synthetic users of emulator run $1 (latency, tokens).
SELECT s.user_id, s.thread_id, s.latency_ms, s.prompt_tokens + s.completion_tokens AS tokens
FROM selflearn.sensor_events s
WHERE s.user_id IN (SELECT DISTINCT e.user_id FROM selflearn.emulator_expectations e
                    WHERE e.emulator_run_id = $1)

-- name: teacher_users_off_version
-- Synthetic users of emulator run $1 with a recorded run on another parameter version than $2
-- (threads the auto-rollback monitor's control kept on the last good version).
SELECT DISTINCT s.user_id
FROM selflearn.sensor_events s
WHERE s.user_id IN (SELECT DISTINCT e.user_id FROM selflearn.emulator_expectations e
                    WHERE e.emulator_run_id = $1)
  AND s.param_version IS DISTINCT FROM $2

-- name: teacher_unrecorded
-- Finished runs of emulator run $1's users that the sensor has not recorded yet.
SELECT count(*) AS n
FROM selflearn.finished_runs f
WHERE f.user_id IN (SELECT DISTINCT e.user_id FROM selflearn.emulator_expectations e
                    WHERE e.emulator_run_id = $1)
  AND NOT EXISTS (SELECT 1 FROM selflearn.sensor_events s WHERE s.run_id = f.run_id)

-- name: teacher_judge_inputs
-- What the judge reads of the first-attempt probes of emulator run $1.
SELECT j.run_id, j.user_id, j.query, j.answer, j.context_text, j.used_memories
FROM selflearn.emulator_expectations e
JOIN selflearn.judge_inputs j ON j.run_id = e.run_id
WHERE e.emulator_run_id = $1 AND e.attempt = 1

-- name: teacher_insert_judgement
-- $1 run, $2 user, $3 experiment, $4 judge version, $5 aspect, $6 memory, $7 score,
-- $8 swapped, $9 repeat.
INSERT INTO selflearn.judgements
  (run_id, user_id, experiment_id, judge_version, aspect, memory_id, score, swapped, repeat)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)

-- name: teacher_insert_verdict
-- $1 experiment, $2 spec hash, $3 verdict, $4 reasons, $5 recommendations, $6 metrics,
-- $7 checks, $8 judge version.
INSERT INTO selflearn.verdicts
  (experiment_id, spec_hash, verdict, reasons, recommendations, metrics, checks, judge_version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id, created_at

-- name: teacher_latest_verdict
-- $1 experiment.
SELECT id, experiment_id, spec_hash, verdict, reasons, recommendations, metrics, checks,
       judge_version, created_at
FROM selflearn.verdicts WHERE experiment_id = $1
ORDER BY id DESC LIMIT 1

-- name: teacher_split_runs
-- Finished chat runs of a split experiment's arms: $1 baseline label, $2 variant label, $3 the
-- experiment's start; one row per run with its thread (the unit of a split experiment).
SELECT param_version, user_id, thread_id, latency_ms, prompt_tokens + completion_tokens AS tokens,
       found_anything
FROM selflearn.sensor_events
WHERE param_version IN ($1, $2) AND started_at >= $3 AND stop_at = 'COMPLETED'
  AND thread_id IS NOT NULL

-- name: sensor_stats_lag
-- Finished runs the sensor has not recorded yet (any user).
SELECT count(*) AS n FROM selflearn.finished_runs f
WHERE NOT EXISTS (SELECT 1 FROM selflearn.sensor_events s WHERE s.run_id = f.run_id)

-- name: teacher_hold_experiment
-- $1 experiment: the session lock a paired experiment is alive by (released when its process,
-- or its connection, goes away). True when taken.
SELECT pg_try_advisory_lock(hashtext('selflearn.experiment'), hashtext($1::text))

-- name: teacher_fail_abandoned
-- Paired experiments still 'running' whose process is gone (nobody holds their lock).
UPDATE selflearn.experiments x
SET status = 'failed', live_arm = NULL, finished_at = now(),
    error = 'abandoned: the process running it stopped'
WHERE x.status = 'running' AND x.mode = 'paired'
  AND NOT EXISTS (SELECT 1 FROM pg_locks l
                  WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                    AND l.classid = hashtext('selflearn.experiment')::oid
                    AND l.objid = hashtext(x.id::text)::oid)
RETURNING x.id

-- name: teacher_replay_answers
-- The replayed questions of emulator run $1 on arm $2 (null: a run without arms) that the sensor
-- recorded (at every budget asked), with the parameter version their run used and its cost.
SELECT a.run_id, a.user_id, a.conversation, a.question_id, a.qtype, a.evidence, a.context_hit,
       a.top_score, a.budget, s.param_version, s.latency_ms,
       s.prompt_tokens + s.completion_tokens AS tokens
FROM selflearn.replay_answers a
JOIN selflearn.sensor_events s ON s.run_id = a.run_id
WHERE a.emulator_run_id = $1 AND a.arm IS NOT DISTINCT FROM $2
ORDER BY a.id

-- name: teacher_replay_retrievals
-- What those runs retrieved (the sensor's copy): `used` and `sources` in rank order.
SELECT r.run_id, r.used, r.sources
FROM selflearn.replay_answers a
JOIN selflearn.sensor_retrievals r ON r.run_id = a.run_id
WHERE a.emulator_run_id = $1 AND a.arm IS NOT DISTINCT FROM $2

-- name: teacher_replay_unrecorded
-- Replayed questions of emulator run $1 whose run the sensor has not recorded yet.
SELECT count(*) AS n FROM selflearn.replay_answers a
WHERE a.emulator_run_id = $1
  AND NOT EXISTS (SELECT 1 FROM selflearn.sensor_events s WHERE s.run_id = a.run_id)

-- name: teacher_set_source
-- $1 experiment, $2 what its arms replayed (world hash, generator, size; corpus hashes).
UPDATE selflearn.experiments SET source = $2 WHERE id = $1
