-- Archive jobs in bounded slices, retried after they failed, claimed fairly across users
-- (issue 20: a 0.96 MB import hit the stage deadline three times and made no memory; the failed
-- range could never be queued again; one tenant's job held the only archivist).
--
-- A job still covers its thread's messages after threads.archived_upto up to upto_message_id,
-- but each claim archives one slice of at most MAAS_ARCHIVE_SLICE_MESSAGES messages and
-- MAAS_ARCHIVE_SLICE_CHARS characters (at least one message), commits its memories with the
-- thread's mark in one transaction and puts the job back in the queue until its range is done.
-- A failed job (its attempts used up) is queued again after MAAS_ARCHIVE_RETRY_S * 2^rounds
-- (at most a day; `rounds` counts these revivals and resets with progress), and at once when its
-- thread is closed again. Jobs are claimed like runs: the oldest claimable job of the user served
-- least recently (maas.claim_turns, queue 'archive'), one job of a thread at a time. The retry
-- delay is maas.archive_retry_after (maas/pipeline/functions.sql).
ALTER TABLE maas.archive_jobs ADD COLUMN rounds integer NOT NULL DEFAULT 0;

DROP INDEX maas.archive_jobs_claim_idx;
CREATE INDEX archive_jobs_queue_idx ON maas.archive_jobs (user_id, id) WHERE status = 'queued';
CREATE INDEX archive_jobs_failed_idx ON maas.archive_jobs (next_attempt_at)
  WHERE status = 'failed';
