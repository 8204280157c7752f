-- The Tuner: versioned parameter sets, the one active version, and the audit log of every change
-- (migration 0008). Every change runs in one transaction that first takes tuner_lock.

-- name: tuner_lock
-- Serialises parameter changes (activate, rollback, prepare) across processes.
SELECT pg_advisory_xact_lock(hashtext('selflearn.tuner'))

-- name: tuner_insert_version
-- $1 params (full set, guarded), $2 parent version, $3 reason, $4 created_by, $5 experiment,
-- $6 arm (baseline / variant / null).
INSERT INTO selflearn.experiment_parameters (params, parent, reason, created_by, experiment_id, arm)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING version, label

-- name: tuner_get_version
-- $1 version.
SELECT version, label, params, active, parent, reason, created_by, experiment_id, arm,
       activated_at, rolled_back_at, created_at
FROM selflearn.experiment_parameters WHERE version = $1

-- name: tuner_active
-- The active version, if any.
SELECT version, label, params, active, parent, reason, created_by, experiment_id, arm,
       activated_at, rolled_back_at, created_at
FROM selflearn.experiment_parameters WHERE active

-- name: tuner_deactivate
-- Clear the active flag (at most one row has it); returns the version that had it.
UPDATE selflearn.experiment_parameters SET active = false WHERE active RETURNING version

-- name: tuner_activate
-- $1 version becomes the active one (after tuner_deactivate in the same transaction).
UPDATE selflearn.experiment_parameters SET active = true, activated_at = clock_timestamp()
WHERE version = $1
RETURNING version

-- name: tuner_mark_rolled_back
-- $1 version was rolled back from: it is never a "last good" version again.
UPDATE selflearn.experiment_parameters SET rolled_back_at = clock_timestamp()
WHERE version = $1

-- name: tuner_last_good
-- The most recently activated version other than $1 (may be null) never rolled back from.
SELECT version, label, params, active, parent, reason, created_by, experiment_id, arm,
       activated_at, rolled_back_at, created_at
FROM selflearn.experiment_parameters
WHERE activated_at IS NOT NULL AND rolled_back_at IS NULL AND version IS DISTINCT FROM $1
ORDER BY activated_at DESC
LIMIT 1

-- name: tuner_versions
-- Newest first: $1 limit, $2 offset.
SELECT version, label, params, active, parent, reason, created_by, experiment_id, arm,
       activated_at, rolled_back_at, created_at
FROM selflearn.experiment_parameters
ORDER BY version DESC
LIMIT $1 OFFSET $2

-- name: tuner_audit
-- $1 action, $2 actor, $3 who, $4 reason, $5 experiment, $6 version, $7 previous version,
-- $8 diff {parameter: [before, after]}, $9 details.
INSERT INTO selflearn.parameter_audit
  (action, actor, who, reason, experiment_id, version, previous_version, diff, details)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING id

-- name: tuner_audit_log
-- Newest first: $1 experiment (null: all), $2 limit.
SELECT id, at, action, actor, who, reason, experiment_id, version, previous_version, diff, details
FROM selflearn.parameter_audit
WHERE $1::uuid IS NULL OR experiment_id = $1
ORDER BY id DESC
LIMIT $2

-- name: tuner_source_state
-- What the parameter source serves: the active version (monitored: activated less than $1
-- seconds ago), the monitor's concurrent control (the last good version: the most recently
-- activated one never rolled back from), the running experiment's arms, and the versions it
-- pinned to single users or threads ({subject: version} and those versions).
-- (teacher_hold_experiment takes the lock a paired experiment is alive by; its pins steer only
-- while it holds it.)
WITH live AS (
  SELECT x.id, x.mode, x.live_arm
  FROM selflearn.experiments x
  WHERE x.status = 'running'
    AND (x.mode = 'split' OR EXISTS (
          SELECT 1 FROM pg_locks l
          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
            AND l.classid = hashtext('selflearn.experiment')::oid
            AND l.objid = hashtext(x.id::text)::oid))
), pinned AS (
  SELECT pp.subject, pp.version FROM selflearn.param_pins pp JOIN live ON live.id = pp.experiment_id
)
SELECT (SELECT jsonb_build_object(
                 'label', a.label, 'params', a.params,
                 'monitored', a.activated_at > clock_timestamp() - make_interval(secs => $1))
        FROM selflearn.experiment_parameters a WHERE a.active) AS active,
       (SELECT jsonb_build_object('label', g.label, 'params', g.params)
        FROM selflearn.experiment_parameters g
        WHERE g.activated_at IS NOT NULL AND g.rolled_back_at IS NULL AND NOT g.active
        ORDER BY g.activated_at DESC
        LIMIT 1) AS control,
       (SELECT jsonb_build_object(
                 'id', live.id, 'mode', live.mode, 'live_arm', live.live_arm,
                 'arms', (SELECT jsonb_object_agg(p.arm, jsonb_build_object(
                                   'label', p.label, 'params', p.params))
                          FROM selflearn.experiment_parameters p
                          WHERE p.experiment_id = live.id AND p.arm IS NOT NULL))
        FROM live) AS experiment,
       (SELECT jsonb_object_agg(subject::text, version) FROM pinned) AS pins,
       (SELECT jsonb_object_agg(p.version::text, jsonb_build_object('label', p.label,
                                                                    'params', p.params))
        FROM selflearn.experiment_parameters p
        WHERE p.version IN (SELECT version FROM pinned)) AS pinned

-- name: tuner_pin
-- $1 subject (a synthetic user or thread), $2 'user' / 'thread', $3 experiment, $4 version: the
-- subject's runs (user) or archive jobs (thread) get that version while the experiment runs.
INSERT INTO selflearn.param_pins (subject, kind, experiment_id, version)
VALUES ($1, $2, $3, $4)
ON CONFLICT (subject) DO UPDATE
SET kind = excluded.kind, experiment_id = excluded.experiment_id, version = excluded.version,
    pinned_at = now()

-- name: tuner_unpin
-- $1 experiment: its pins end with it.
DELETE FROM selflearn.param_pins WHERE experiment_id = $1

-- name: tuner_age_s
-- Seconds since $1 (an activation time), by the database's clock.
SELECT extract(epoch FROM clock_timestamp() - $1::timestamptz)::float8

-- name: tuner_monitor_threads
-- The automatic-rollback monitor's data: one row per thread of the two arms since the active
-- version's activation ($3): its runs on the active version ($1) or the concurrent control
-- ($2). Client traffic only (no emulator, test-runner or bench runs), chat runs only (not
-- /v1/context calls), users with history only (a client run before the activation).
SELECT s.user_id, s.thread_id, s.param_version = $1 AS active, count(*) AS runs,
       count(*) FILTER (WHERE s.status = 'FAILED') AS failed,
       count(*) FILTER (WHERE s.found_anything) AS found,
       sum(s.latency_ms)::float8 AS latency, count(s.latency_ms) AS timed,
       sum(coalesce(s.prompt_tokens, 0) + coalesce(s.completion_tokens, 0))::float8 AS tokens
FROM selflearn.sensor_events s
WHERE s.finished_at >= $3 AND s.started_at >= $3 AND s.param_version IN ($1, $2)
  AND s.stop_at = 'COMPLETED' AND s.client_type = 'client' AND s.thread_id IS NOT NULL
  AND EXISTS (SELECT 1 FROM selflearn.sensor_events h
              WHERE h.user_id = s.user_id AND h.client_type = 'client' AND h.started_at < $3)
GROUP BY s.user_id, s.thread_id, s.param_version
