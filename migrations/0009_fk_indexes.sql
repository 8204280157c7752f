-- Indexes behind foreign keys that had none. Deleting a parent row makes Postgres look up its
-- referencing rows; without an index every deleted row scans the whole child table, so erasing a
-- user with 10k memories took 12.8 s (10k scans of maas.memories for superseded_by alone).
-- Partial (NOT NULL): the lookups are `col = $1`, and most rows have no reference.
CREATE INDEX memories_superseded_by_idx ON maas.memories (superseded_by)
  WHERE superseded_by IS NOT NULL;
CREATE INDEX memories_source_thread_idx ON maas.memories (source_thread_id)
  WHERE source_thread_id IS NOT NULL;
CREATE INDEX runs_message_idx ON maas.pipeline_runs (message_id) WHERE message_id IS NOT NULL;
-- messages_one_answer_per_run only covers assistant rows; a user message links its run too.
CREATE INDEX messages_run_idx ON maas.messages (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX llm_calls_job_idx ON maas.llm_calls (archive_job_id) WHERE archive_job_id IS NOT NULL;
CREATE INDEX test_run_steps_run_idx ON maas.test_run_steps (run_id) WHERE run_id IS NOT NULL;
