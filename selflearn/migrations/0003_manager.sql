-- Self-learning III (#8): the Manager's goals, cycles, the proposals that wait for a person, and
-- each goal's measurements over time (the dashboard's plot). Experiments, verdicts and parameter
-- versions are the Teacher's and the Tuner's (0008); a cycle links to what it ran.

CREATE TABLE selflearn.goals (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  description text NOT NULL DEFAULT '',
  metric text NOT NULL,                       -- a Teacher metric (METRICS.md §10)
  direction text NOT NULL CHECK (direction IN ('increase', 'decrease')),
  target double precision NOT NULL,
  -- [{"metric": "latency_p95_ms", "op": "<=", "value": 2000}, …]: absolute limits every shipped
  -- version must keep, checked on the variant arm and on micro cycles.
  constraints jsonb NOT NULL DEFAULT '[]',
  -- parameters a macro or deep cycle may change toward this goal, with their search ranges:
  -- {"retrieval.min_score": [0.0, 0.5], …}; empty = the Manager's default levers for the metric
  search_space jsonb NOT NULL DEFAULT '{}',
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'achieved', 'archived')),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE selflearn.cycles (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  kind text NOT NULL CHECK (kind IN ('micro', 'macro', 'deep')),
  goal_id integer REFERENCES selflearn.goals (id) ON DELETE SET NULL,
  status text NOT NULL DEFAULT 'running'
    CHECK (status IN ('running', 'done', 'failed', 'stopped', 'aborted')),
  phase text NOT NULL DEFAULT 'starting',     -- what it is doing now (emulating, experiment …)
  progress double precision NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
  config jsonb NOT NULL DEFAULT '{}',         -- what was asked: variant, dialogs, seed, trials
  state jsonb NOT NULL DEFAULT '{}',          -- what it has done so far (resumable steps)
  outcome text,                               -- shipped, proposed, held, healthy, degraded …
  result jsonb,                               -- the evidence the report is made from
  report_md text,
  requested_by text NOT NULL,                 -- 'admin api', 'cli', 'dashboard', 'schedule'
  stop_requested boolean NOT NULL DEFAULT false,
  lease_token uuid,                           -- the process running it
  lease_until timestamptz,                    -- renewed by its heartbeat; expired = orphaned
  error text,
  started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at timestamptz
);
-- One cycle at a time: experiments steer every new run's parameters, so two would interfere.
CREATE UNIQUE INDEX cycles_one_running ON selflearn.cycles ((true)) WHERE status = 'running';
CREATE INDEX cycles_goal_idx ON selflearn.cycles (goal_id);

-- The experiments a cycle ran (macro: one; deep: one per trial and the confirmation).
CREATE TABLE selflearn.cycle_experiments (
  cycle_id uuid NOT NULL REFERENCES selflearn.cycles (id) ON DELETE CASCADE,
  experiment_id uuid NOT NULL REFERENCES selflearn.experiments (id) ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('macro', 'trial', 'confirm')),
  trial integer,                              -- deep: the Optuna trial number
  PRIMARY KEY (cycle_id, experiment_id)
);
CREATE INDEX cycle_experiments_experiment_idx ON selflearn.cycle_experiments (experiment_id);

-- A SHIP verdict whose change is critical (settings) waits here for a person.
CREATE TABLE selflearn.proposals (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  cycle_id uuid REFERENCES selflearn.cycles (id) ON DELETE SET NULL,
  goal_id integer REFERENCES selflearn.goals (id) ON DELETE SET NULL,
  experiment_id uuid REFERENCES selflearn.experiments (id) ON DELETE SET NULL,
  version integer NOT NULL REFERENCES selflearn.experiment_parameters (version),
  diff jsonb NOT NULL,                        -- {parameter: [active, proposed]}
  critical_reasons text[] NOT NULL,
  evidence jsonb NOT NULL,                    -- verdict, reasons, the metrics with their CIs
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'approved', 'rejected', 'superseded')),
  decided_by text,
  note text,
  decided_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX proposals_status_idx ON selflearn.proposals (status);

-- A goal's metric as measured on the parameters in force (micro) or on an experiment's arms.
CREATE TABLE selflearn.goal_measurements (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  goal_id integer NOT NULL REFERENCES selflearn.goals (id) ON DELETE CASCADE,
  cycle_id uuid REFERENCES selflearn.cycles (id) ON DELETE SET NULL,
  metric text NOT NULL,
  value double precision NOT NULL,
  ci_low double precision,
  ci_high double precision,
  param_version text,                         -- the label the runs used (tuner-N, builtin …)
  source text NOT NULL CHECK (source IN ('micro', 'baseline', 'variant')),
  -- measured on the parameters in force then (micro, baseline), or on a variant that was then
  -- activated: the goal's "current" value is the latest such measurement
  in_force boolean NOT NULL,
  measured_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX goal_measurements_goal_idx ON selflearn.goal_measurements (goal_id, measured_at);

-- Optuna's own tables (deep cycles' studies) live in this schema, created by optuna itself.
CREATE SCHEMA IF NOT EXISTS selflearn_optuna;
