-- The express lane's submit writes its run already claimed and its message already linked.
--
-- maas.submit_run (migrations 0018, 0023) inserted the message, then the run at NEW, then linked
-- the message to the run (an UPDATE), then claimed the run for the analyzer (an UPDATE to
-- ANALYZING): two more row versions, each an entry in every index of its table (a status change
-- is never a HOT update, and messages.run_id is indexed), a second run of the status triggers
-- and a NOTIFY of NEW that only woke workers for a run nobody else could take. Now:
--
-- * the message is inserted with its run's id (the caller chose it): the foreign key from
--   messages to runs is checked at commit, when the run is there (a rolled-back submit leaves
--   neither; ON DELETE SET NULL still acts at once: referential actions are never deferred);
-- * when the express lane's claim would be taken (claim_stage's conditions: a lease asked for,
--   no earlier unfinished run of the thread), the run is inserted at ANALYZING under that lease.
--   Its NEW event is still recorded, first (attempt 0, as before), by the status trigger: a run
--   inserted past NEW records NEW, then its status. Its stamps are as before (created_at, then
--   analyzing_at). Only NEW's NOTIFY is not sent, as for the statuses passed in migration 0024.
-- Otherwise the run is inserted at NEW and everything is as before.

ALTER TABLE maas.messages ALTER CONSTRAINT messages_run_fk DEFERRABLE INITIALLY DEFERRED;

CREATE OR REPLACE FUNCTION maas.notify_run_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  waiting uuid;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.status = OLD.status THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' AND NEW.status <> 'NEW' THEN  -- inserted claimed (submit_run)
    INSERT INTO maas.run_events (run_id, status, attempt, error) VALUES (NEW.id, 'NEW', 0, NULL);
  END IF;
  INSERT INTO maas.run_events (run_id, status, attempt, error)
    VALUES (NEW.id, NEW.status, NEW.attempts,
            CASE WHEN NEW.status IN ('FAILED', 'NEW', 'ANALYZED', 'READY') THEN NEW.error END);
  PERFORM pg_notify('maas_runs', NEW.status::text || ':' || NEW.id::text);
  IF NEW.thread_id IS NOT NULL
     AND (NEW.status IN ('COMPLETED', 'FAILED') OR NEW.status = NEW.stop_at) THEN
    SELECT w.id INTO waiting FROM maas.pipeline_runs w
    WHERE w.thread_id = NEW.thread_id AND w.created_at > NEW.created_at AND w.status = 'NEW'
    ORDER BY w.created_at LIMIT 1;
    IF waiting IS NOT NULL THEN
      PERFORM pg_notify('maas_runs', 'UNBLOCKED:' || waiting::text);
    END IF;
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION maas.submit_run(
  p_run uuid, p_user uuid, p_thread uuid, p_title text, p_query text, p_mode text, p_stop_at text,
  p_client_type text, p_idempotency_key text, p_max_tokens integer,
  p_lease_s float8, p_worker text,
  OUT run_id uuid, OUT thread_id uuid, OUT message_id bigint, OUT mode text,
  OUT lease_token uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
  claimed boolean;
BEGIN
  thread_id := p_thread;
  IF p_stop_at = 'COMPLETED' THEN
    IF thread_id IS NULL THEN
      INSERT INTO maas.threads (user_id, title) VALUES (p_user, p_title) RETURNING id INTO thread_id;
    ELSE
      UPDATE maas.threads t SET closed_at = NULL, last_message_at = now()
      WHERE t.id = p_thread AND t.user_id = p_user;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'thread % not found', p_thread USING ERRCODE = 'MA404';
      END IF;
    END IF;
    INSERT INTO maas.messages (thread_id, user_id, role, speaker, content, created_at, run_id)
    VALUES (thread_id, p_user, 'user', NULL, p_query, now(), p_run) RETURNING id INTO message_id;
  END IF;

  -- claim_stage's conditions for a run just made (its status and next attempt are the defaults);
  -- the thread's row is locked above, so a concurrent submit to it sees this run once committed
  claimed := p_lease_s IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM maas.pipeline_runs e
    WHERE e.thread_id = submit_run.thread_id
      AND e.status NOT IN ('COMPLETED', 'FAILED') AND e.status <> e.stop_at);

  INSERT INTO maas.pipeline_runs
    (id, user_id, thread_id, message_id, query, mode, stop_at, client_type, idempotency_key,
     max_tokens, status, attempts, lease_token, claimed_by, claimed_until)
  VALUES (p_run, p_user, thread_id, message_id, p_query,
          coalesce((SELECT u.llm_mode FROM maas.users u WHERE u.id = p_user), p_mode),
          p_stop_at::maas.run_status, p_client_type, p_idempotency_key, p_max_tokens,
          CASE WHEN claimed THEN 'ANALYZING' ELSE 'NEW' END::maas.run_status,
          CASE WHEN claimed THEN 1 ELSE 0 END,
          CASE WHEN claimed THEN gen_random_uuid() END,
          CASE WHEN claimed THEN p_worker END,
          CASE WHEN claimed THEN now() + make_interval(secs => p_lease_s) END)
  ON CONFLICT (user_id, idempotency_key) DO NOTHING
  RETURNING id, mode, lease_token INTO run_id, mode, lease_token;
  IF run_id IS NULL THEN
    RAISE EXCEPTION 'idempotency key taken' USING ERRCODE = 'MA409';
  END IF;
  IF lease_token IS NOT NULL THEN  -- as claim_stage: the run's last commit flushes this one
    PERFORM set_config('synchronous_commit', 'off', true);
  END IF;
END $$;
