-- A run that ends wakes the analyzer only when a later run of its thread is waiting for it.
--
-- A run waits in NEW while an earlier run of its thread is unfinished (claim_run), so every
-- process's listener used to ring its analyzer on each COMPLETED or FAILED, and the analyzer ran
-- a claim (~1 ms in Postgres) that nearly always found nothing: with the express lane a chat's
-- own run is driven by its request, and the next message of a thread is usually sent after the
-- answer. Now the trigger looks (one probe of runs_thread_idx) and sends "UNBLOCKED:<run id>" for
-- the waiting run, if there is one; the payload of every status change is unchanged.
CREATE OR REPLACE FUNCTION maas.notify_run_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  waiting uuid;
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.status = OLD.status THEN
    RETURN NULL;
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
