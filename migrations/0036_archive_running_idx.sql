-- "One job of a thread at a time": claim_archive_job skips a thread with a running job. Per-turn
-- archiving leaves many finished jobs per thread, so that test reads only the running ones.
CREATE INDEX archive_jobs_running_idx ON maas.archive_jobs (thread_id) WHERE status = 'running';
