-- An emulator run lives in the process that started it. Its heartbeat lets any process find the
-- runs of a process that died (crash, SIGKILL) and end them as failed, never left running.
ALTER TABLE selflearn.emulator_runs ADD COLUMN heartbeat_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX emulator_runs_running_idx ON selflearn.emulator_runs (heartbeat_at)
  WHERE status = 'running';
