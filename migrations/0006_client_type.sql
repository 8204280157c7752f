-- Who sent a run, as recorded from the X-MaaS-Client header: 'client' is real traffic (the
-- default), 'emulator' the self-learning User Emulator (#6), 'test-runner' and 'bench' the test
-- runner and the benchmarks. The API maps anything else to 'client'; the database now refuses it
-- too, so real and synthetic traffic can always be told apart.
ALTER TABLE maas.pipeline_runs
  ADD CONSTRAINT pipeline_runs_client_type_check
  CHECK (client_type IN ('client', 'emulator', 'test-runner', 'bench'));
COMMENT ON COLUMN maas.pipeline_runs.client_type IS
  'client (real traffic), emulator, test-runner or bench: from the X-MaaS-Client header';
