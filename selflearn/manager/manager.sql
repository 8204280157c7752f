-- The Manager (#8): goals, cycles, proposals waiting for a person, goal measurements
-- (migration 0010). Every status change of a cycle or a proposal is a guarded UPDATE.

-- name: mgr_goal_insert
-- $1 name, $2 description, $3 metric, $4 direction, $5 target, $6 constraints, $7 search space.
INSERT INTO selflearn.goals (name, description, metric, direction, target, constraints, search_space)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id

-- name: mgr_goal_get
-- $1 goal id; with its latest measurement on the parameters in force (micro, or a shipped arm).
SELECT g.id, g.name, g.description, g.metric, g.direction, g.target, g.constraints,
       g.search_space, g.status, g.created_at, g.updated_at,
       m.value AS current, m.measured_at AS current_at, m.param_version AS current_version,
       f.value AS first
FROM selflearn.goals g
LEFT JOIN LATERAL (
  SELECT x.value, x.measured_at, x.param_version FROM selflearn.goal_measurements x
  WHERE x.goal_id = g.id AND x.in_force
  ORDER BY x.measured_at DESC, x.id DESC LIMIT 1
) m ON true
LEFT JOIN LATERAL (
  SELECT x.value FROM selflearn.goal_measurements x
  WHERE x.goal_id = g.id AND x.in_force
  ORDER BY x.measured_at, x.id LIMIT 1
) f ON true
WHERE g.id = $1

-- name: mgr_goal_list
-- Every goal but archived ones unless $1 (include archived); newest first.
SELECT id FROM selflearn.goals WHERE $1 OR status <> 'archived' ORDER BY id DESC

-- name: mgr_goal_update
-- $1 id, $2 name, $3 description, $4 target, $5 constraints, $6 search space, $7 status.
UPDATE selflearn.goals
SET name = $2, description = $3, target = $4, constraints = $5, search_space = $6, status = $7,
    updated_at = clock_timestamp()
WHERE id = $1
RETURNING id

-- name: mgr_goal_delete
-- $1 id. Cycles and proposals keep their rows (goal_id becomes null); measurements go.
DELETE FROM selflearn.goals WHERE id = $1 RETURNING id

-- name: mgr_measure
-- $1 goal, $2 cycle, $3 metric, $4 value, $5 ci low, $6 ci high, $7 param version, $8 source,
-- $9 in force.
INSERT INTO selflearn.goal_measurements
  (goal_id, cycle_id, metric, value, ci_low, ci_high, param_version, source, in_force)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)

-- name: mgr_goal_series
-- $1 goal: every measurement, oldest first.
SELECT id, cycle_id, metric, value, ci_low, ci_high, param_version, source, in_force,
       measured_at
FROM selflearn.goal_measurements WHERE goal_id = $1
ORDER BY measured_at, id

-- name: mgr_param_changes
-- Parameter changes between $1 and $2 (activations, rollbacks …), oldest first: the plot's marks.
SELECT id, at, action, actor, who, version, previous_version, reason
FROM selflearn.parameter_audit
WHERE action IN ('activate', 'deactivate', 'rollback', 'auto_rollback') AND at BETWEEN $1 AND $2
ORDER BY at, id

-- name: mgr_cycle_insert
-- $1 kind, $2 goal, $3 config, $4 requested by, $5 lease token, $6 lease seconds.
-- Fails on cycles_one_running when another cycle runs.
INSERT INTO selflearn.cycles (kind, goal_id, config, requested_by, lease_token, lease_until)
VALUES ($1, $2, $3, $4, $5, clock_timestamp() + make_interval(secs => $6))
RETURNING id

-- name: mgr_cycle_get
-- $1 cycle id.
SELECT c.id, c.kind, c.goal_id, g.name AS goal_name, c.status, c.phase, c.progress, c.config,
       c.state, c.outcome, c.result, c.report_md IS NOT NULL AS has_report, c.requested_by,
       c.stop_requested, c.lease_until, c.error, c.started_at, c.finished_at,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                 'experiment_id', ce.experiment_id, 'role', ce.role, 'trial', ce.trial,
                 'name', x.name, 'status', x.status,
                 'verdict', (SELECT v.verdict FROM selflearn.verdicts v
                             WHERE v.experiment_id = x.id ORDER BY v.id DESC LIMIT 1))
               ORDER BY x.started_at), '[]'::jsonb)
        FROM selflearn.cycle_experiments ce
        JOIN selflearn.experiments x ON x.id = ce.experiment_id
        WHERE ce.cycle_id = c.id) AS experiments
FROM selflearn.cycles c
LEFT JOIN selflearn.goals g ON g.id = c.goal_id
WHERE c.id = $1

-- name: mgr_cycle_list
-- Newest first: $1 status (null: any), $2 goal (null: any), $3 limit, $4 offset.
SELECT c.id, c.kind, c.goal_id, g.name AS goal_name, c.status, c.phase, c.progress, c.outcome,
       c.requested_by, c.error, c.started_at, c.finished_at, c.report_md IS NOT NULL AS has_report
FROM selflearn.cycles c
LEFT JOIN selflearn.goals g ON g.id = c.goal_id
WHERE ($1::text IS NULL OR c.status = $1) AND ($2::integer IS NULL OR c.goal_id = $2)
ORDER BY c.started_at DESC
LIMIT $3 OFFSET $4

-- name: mgr_cycle_progress
-- $1 id, $2 lease token, $3 phase, $4 progress, $5 state, $6 lease seconds. The heartbeat too:
-- returns whether a stop was asked (from any process); nothing if the cycle is no longer ours.
UPDATE selflearn.cycles
SET phase = $3, progress = $4, state = $5,
    lease_until = clock_timestamp() + make_interval(secs => $6)
WHERE id = $1 AND status = 'running' AND lease_token = $2
RETURNING stop_requested

-- name: mgr_cycle_finish
-- $1 id, $2 lease token, $3 final status, $4 outcome, $5 result, $6 report, $7 error.
UPDATE selflearn.cycles
SET status = $3, outcome = $4, result = $5, report_md = $6, error = $7,
    progress = CASE WHEN $3 = 'done' THEN 1 ELSE progress END,
    finished_at = clock_timestamp(), lease_token = NULL, lease_until = NULL
WHERE id = $1 AND status = 'running' AND lease_token = $2
RETURNING id

-- name: mgr_cycle_request_stop
-- $1 id: a person asks a running cycle to stop (its process sees it at its next heartbeat).
UPDATE selflearn.cycles SET stop_requested = true
WHERE id = $1 AND status = 'running'
RETURNING id

-- name: mgr_cycle_orphans
-- Running cycles whose lease expired: their process died (crash, kill, restart).
SELECT id, kind, goal_id, phase, config, state, lease_token
FROM selflearn.cycles
WHERE status = 'running' AND lease_until < clock_timestamp()
ORDER BY started_at

-- name: mgr_cycle_adopt
-- $1 id, $2 the lease token it had, $3 our new token, $4 lease seconds: take over an orphan.
UPDATE selflearn.cycles
SET lease_token = $3, lease_until = clock_timestamp() + make_interval(secs => $4)
WHERE id = $1 AND status = 'running' AND lease_token IS NOT DISTINCT FROM $2
  AND lease_until < clock_timestamp()
RETURNING id

-- name: mgr_cycle_report
-- $1 cycle id.
SELECT id, report_md, result, kind, status, outcome FROM selflearn.cycles WHERE id = $1

-- name: mgr_cycle_link_experiment
-- $1 cycle, $2 experiment, $3 role, $4 trial number.
INSERT INTO selflearn.cycle_experiments (cycle_id, experiment_id, role, trial)
VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING

-- name: mgr_goal_tried
-- Variants the macro and deep cycles of goal $1 have already tested (their experiments' specs):
-- how often, and whether a version that shipped one of them was rolled back by the monitor.
SELECT x.spec -> 'variant' AS variant, count(*) AS tests,
       bool_or(EXISTS (
         SELECT 1 FROM selflearn.parameter_audit a
         JOIN selflearn.experiment_parameters p ON p.version = a.previous_version
         WHERE a.action = 'auto_rollback' AND p.experiment_id = x.id AND p.arm = 'variant'
       )) AS auto_rolled_back
FROM selflearn.cycle_experiments ce
JOIN selflearn.cycles c ON c.id = ce.cycle_id
JOIN selflearn.experiments x ON x.id = ce.experiment_id
WHERE c.goal_id = $1
GROUP BY x.spec -> 'variant'

-- name: mgr_proposal_insert
-- $1 cycle, $2 goal, $3 experiment, $4 version, $5 diff, $6 critical reasons, $7 evidence.
INSERT INTO selflearn.proposals
  (cycle_id, goal_id, experiment_id, version, diff, critical_reasons, evidence)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id

-- name: mgr_proposal_get
-- $1 proposal id.
SELECT p.id, p.cycle_id, p.goal_id, g.name AS goal_name, p.experiment_id, p.version, p.diff,
       p.critical_reasons, p.evidence, p.status, p.decided_by, p.note, p.decided_at, p.created_at
FROM selflearn.proposals p LEFT JOIN selflearn.goals g ON g.id = p.goal_id
WHERE p.id = $1

-- name: mgr_proposal_list
-- Newest first: $1 status (null: any), $2 limit.
SELECT p.id, p.cycle_id, p.goal_id, g.name AS goal_name, p.experiment_id, p.version, p.diff,
       p.critical_reasons, p.evidence, p.status, p.decided_by, p.note, p.decided_at, p.created_at
FROM selflearn.proposals p LEFT JOIN selflearn.goals g ON g.id = p.goal_id
WHERE $1::text IS NULL OR p.status = $1
ORDER BY p.id DESC
LIMIT $2

-- name: mgr_proposal_decide
-- $1 id, $2 new status (approved / rejected), $3 who, $4 note. Only a pending one.
UPDATE selflearn.proposals
SET status = $2, decided_by = $3, note = $4, decided_at = clock_timestamp()
WHERE id = $1 AND status = 'pending'
RETURNING id

-- name: mgr_proposal_supersede
-- Pending proposals of goal $1 other than $2 (null: all) are superseded by a newer one.
UPDATE selflearn.proposals
SET status = 'superseded', decided_by = 'manager', decided_at = clock_timestamp(),
    note = 'a newer proposal for the same goal replaced it'
WHERE goal_id = $1 AND status = 'pending' AND id IS DISTINCT FROM $2

-- name: mgr_emulator_progress
-- $1 emulator run: how far it is (dialogs done of those asked).
SELECT dialogs, dialogs_requested, status FROM selflearn.emulator_runs WHERE id = $1

-- name: mgr_experiment_runs
-- $1 experiment: its status and both arms' emulator runs.
SELECT status, live_arm, baseline_emulator_run, variant_emulator_run, error
FROM selflearn.experiments WHERE id = $1

-- name: mgr_verdict
-- $1 experiment: its latest verdict.
SELECT id, experiment_id, spec_hash, verdict, reasons, recommendations, metrics, checks,
       judge_version, created_at
FROM selflearn.verdicts WHERE experiment_id = $1
ORDER BY id DESC LIMIT 1

-- name: mgr_experiment_versions
-- $1 experiment: the parameter versions of its arms.
SELECT arm, version, label, params FROM selflearn.experiment_parameters
WHERE experiment_id = $1 AND arm IS NOT NULL

-- name: mgr_recent_verdicts
-- The latest $1 experiments with a verdict, newest first, for the dashboard.
SELECT x.id, x.name, x.status, x.started_at, x.finished_at, v.verdict, v.metrics, v.reasons,
       x.spec ->> 'primary_metric' AS primary_metric,
       (SELECT ce.cycle_id FROM selflearn.cycle_experiments ce WHERE ce.experiment_id = x.id
        LIMIT 1) AS cycle_id
FROM selflearn.experiments x
JOIN LATERAL (SELECT * FROM selflearn.verdicts vv WHERE vv.experiment_id = x.id
              ORDER BY vv.id DESC LIMIT 1) v ON true
ORDER BY x.started_at DESC
LIMIT $1

-- name: mgr_cycle_experiment_verdicts
-- $1 cycle: each experiment it ran with its latest verdict and arms, in order.
SELECT ce.role, ce.trial, x.id, x.name, x.status, x.spec, x.error, x.started_at, x.finished_at,
       v.verdict, v.reasons, v.recommendations, v.metrics, v.checks
FROM selflearn.cycle_experiments ce
JOIN selflearn.experiments x ON x.id = ce.experiment_id
LEFT JOIN LATERAL (SELECT * FROM selflearn.verdicts vv WHERE vv.experiment_id = x.id
                   ORDER BY vv.id DESC LIMIT 1) v ON true
WHERE ce.cycle_id = $1
ORDER BY x.started_at

-- name: mgr_experiment_running
-- The experiment steering parameters now, if any.
SELECT id, name FROM selflearn.experiments WHERE status = 'running'

-- name: mgr_orphan_experiments
-- $1 cycle: its experiments still marked running (their process died with the cycle's).
SELECT x.id FROM selflearn.cycle_experiments ce
JOIN selflearn.experiments x ON x.id = ce.experiment_id
WHERE ce.cycle_id = $1 AND x.status = 'running'

-- name: mgr_sensor_coverage
-- $1 emulator run: finished runs of its synthetic users, and how many the sensor recorded.
SELECT count(*) AS runs,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM selflearn.sensor_events s
                                      WHERE s.run_id = f.run_id)) AS recorded
FROM selflearn.finished_runs f
WHERE f.user_id IN (SELECT DISTINCT e.user_id FROM selflearn.emulator_expectations e
                    WHERE e.emulator_run_id = $1)

-- name: mgr_audit_recent
-- The latest $1 parameter changes, newest first (reports).
SELECT id, at, action, actor, who, version, previous_version, reason, diff
FROM selflearn.parameter_audit
WHERE action <> 'experiment_arm'
ORDER BY id DESC
LIMIT $1

-- name: mgr_stale_experiments
-- Experiments still marked running whose cycle has ended (it was aborted at a shutdown while
-- the experiment wound down, and the process went away before recording the experiment's end).
SELECT DISTINCT x.id FROM selflearn.cycle_experiments ce
JOIN selflearn.cycles c ON c.id = ce.cycle_id
JOIN selflearn.experiments x ON x.id = ce.experiment_id
WHERE c.status <> 'running' AND x.status = 'running'

-- name: mgr_goal_tests
-- $1 goal: every test of the goal so far, oldest first — the experiments of its macro cycles
-- and deep cycles' confirmations that reached a verdict, with the α each ran at.
SELECT x.id AS experiment_id, ce.role, (x.spec ->> 'alpha')::float8 AS alpha, x.started_at,
       (SELECT v.verdict FROM selflearn.verdicts v WHERE v.experiment_id = x.id
        ORDER BY v.id DESC LIMIT 1) AS verdict
FROM selflearn.cycle_experiments ce
JOIN selflearn.cycles c ON c.id = ce.cycle_id
JOIN selflearn.experiments x ON x.id = ce.experiment_id
WHERE c.goal_id = $1 AND ce.role IN ('macro', 'confirm')
  AND EXISTS (SELECT 1 FROM selflearn.verdicts v WHERE v.experiment_id = x.id)
ORDER BY x.started_at, x.id

-- name: mgr_schedule_usage
-- What unattended learning has used: questions and turns its emulator runs sent in the last
-- day, and the client (live) runs that finished in the last $1 seconds.
SELECT (SELECT coalesce(sum(runs), 0) FROM selflearn.emulator_runs
        WHERE started_at > now() - interval '1 day') AS runs_today,
       (SELECT count(*) FROM selflearn.sensor_events
        WHERE client_type = 'client' AND finished_at > now() - make_interval(secs => $1))
         AS live_runs

-- name: mgr_schedule_goal
-- The active goal a scheduled learning cycle works on: the one measured longest ago (or never).
SELECT g.id FROM selflearn.goals g
WHERE g.status = 'active'
ORDER BY (SELECT max(m.measured_at) FROM selflearn.goal_measurements m WHERE m.goal_id = g.id)
         ASC NULLS FIRST, g.id
LIMIT 1

-- name: mgr_schedule_corpus
-- The uploaded conversations a scheduled learning cycle is fed (beside its world), oldest first;
-- at most as many as a replay spec takes.
SELECT hash FROM selflearn.conversations ORDER BY uploaded_at, hash LIMIT 1000
