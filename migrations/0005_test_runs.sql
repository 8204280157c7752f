-- Test suites run against the service (#4): who ran which suite how, the throwaway users each
-- run created, and every step's checks.

-- A user pinned to offline mode: the throwaway users of a mock test run never reach an LLM, even
-- when the service is configured with one. NULL = the service's configured model.
ALTER TABLE maas.users ADD COLUMN llm_mode text CHECK (llm_mode IN ('offline'));

CREATE TABLE maas.test_runs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id uuid REFERENCES maas.users (id) ON DELETE CASCADE,  -- NULL: started with the admin key
  suite_name text NOT NULL,
  suite_hash text NOT NULL,                   -- sha256 of the validated suite, canonical JSON
  suite jsonb NOT NULL,                       -- the suite as run, so a report explains itself
  mode text NOT NULL CHECK (mode IN ('mock', 'live')),
  status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'passed', 'failed', 'error')),
  error text,
  steps_total integer NOT NULL,
  passed integer NOT NULL DEFAULT 0,
  failed integer NOT NULL DEFAULT 0,
  claimed_by text,                            -- the process running it
  heartbeat_until timestamptz NOT NULL,       -- a running test run past this was interrupted
  started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at timestamptz
);
CREATE INDEX test_runs_owner_idx ON maas.test_runs (owner_id, started_at DESC);
CREATE INDEX test_runs_started_idx ON maas.test_runs (started_at DESC);
CREATE INDEX test_runs_running_idx ON maas.test_runs (heartbeat_until) WHERE status = 'running';

-- The fresh users a test run created, by their logical name in the suite ("alice").
CREATE TABLE maas.test_run_users (
  test_run_id uuid NOT NULL REFERENCES maas.test_runs (id) ON DELETE CASCADE,
  name text NOT NULL,
  user_id uuid NOT NULL UNIQUE REFERENCES maas.users (id) ON DELETE CASCADE,
  PRIMARY KEY (test_run_id, name)
);

CREATE TABLE maas.test_run_steps (
  test_run_id uuid NOT NULL REFERENCES maas.test_runs (id) ON DELETE CASCADE,
  idx integer NOT NULL,
  action text NOT NULL,
  description text NOT NULL,
  user_name text NOT NULL,
  thread_name text NOT NULL,
  run_id uuid REFERENCES maas.pipeline_runs (id) ON DELETE SET NULL,
  thread_id uuid,
  passed boolean NOT NULL,
  checks jsonb NOT NULL DEFAULT '[]',         -- [{name, passed, expected, actual}]
  ms real NOT NULL DEFAULT 0,
  finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (test_run_id, idx)
);

-- Deleting a test run (its owner erased) erases the throwaway users it made, with their data.
CREATE FUNCTION maas.drop_test_run_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM maas.users WHERE id = OLD.user_id;
  DELETE FROM maas.memory_stats WHERE user_id = OLD.user_id;
  RETURN NULL;
END $$;
CREATE TRIGGER test_run_users_drop AFTER DELETE ON maas.test_run_users
  FOR EACH ROW EXECUTE FUNCTION maas.drop_test_run_user();
