-- The dialog-level pass after per-turn archiving (issue 17). A per-turn job archives one turn (or
-- an LLM-mode batch) from the thread's archived mark; closing a thread, or its idling, queues a
-- dialog pass over every turn since the thread's last one (its own mark, consolidated_upto): the
-- archivist sees the turns together (consolidation across them), and the memory store merges
-- what per-turn archiving already stored (a repeated fact only gains provenance) and supersedes
-- changed values. The two kinds of job have their own ranges: a pass may cover the very range
-- a turn job did. What was archived before this migration counts as passed.
ALTER TABLE maas.threads ADD COLUMN consolidated_upto bigint NOT NULL DEFAULT 0;
UPDATE maas.threads SET consolidated_upto = archived_upto;

ALTER TABLE maas.archive_jobs ADD COLUMN scope text NOT NULL
  GENERATED ALWAYS AS (CASE WHEN reason = 'turn' THEN 'turn' ELSE 'dialog' END) STORED;
ALTER TABLE maas.archive_jobs DROP CONSTRAINT archive_jobs_thread_id_upto_message_id_key;
ALTER TABLE maas.archive_jobs ADD CONSTRAINT archive_jobs_thread_upto_scope_key
  UNIQUE (thread_id, upto_message_id, scope);
