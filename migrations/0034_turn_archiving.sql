-- Per-turn archiving (issue 17): a chat run that completes queues its thread's new turn for the
-- archivist at once, in the same transaction (the trigger runs_turn_archive and its function
-- maas.queue_turn_archive live in maas/pipeline/functions.sql). Such a job has reason 'turn'.
ALTER TABLE maas.archive_jobs DROP CONSTRAINT archive_jobs_reason_check;
ALTER TABLE maas.archive_jobs ADD CONSTRAINT archive_jobs_reason_check
  CHECK (reason IN ('closed', 'idle', 'import', 'turn'));

-- Runs that come through the OpenAI-compatible endpoint say so (issue 17).
ALTER TABLE maas.pipeline_runs DROP CONSTRAINT pipeline_runs_client_type_check;
ALTER TABLE maas.pipeline_runs ADD CONSTRAINT pipeline_runs_client_type_check
  CHECK (client_type IN ('client', 'emulator', 'test-runner', 'bench', 'openai'));
