-- The express lane passes a run through ANALYZED and READY in one row version each.
--
-- With the express lane, a stage's commit also claims the next stage (migration 0019): the run
-- became ANALYZED (one UPDATE: a new row version, an entry in each of the table's indexes -- a
-- status change is never a HOT update --, a run event, a NOTIFY) and, in the same transaction,
-- ASSEMBLING (all of that again); likewise READY, then RESPONDING. Nobody else ever sees a run at
-- ANALYZED or READY on that path (the claim commits with it), so the NOTIFY woke workers for
-- nothing. Now, when the claim will be taken, the run goes straight to the next working status:
-- the passed status keeps its run event (recorded first, so events stay in order, attempt 0 as
-- before) and its timestamp (analyzed_at, ready_at); only its NOTIFY is not sent (an SSE stream
-- of the run is woken by the next status and reads both events). When the claim would not be
-- taken (no lease asked for: a worker's commit, or the run stops there; an earlier run of the
-- thread unfinished; a retry not yet due) the commit is exactly as before.

-- True when run p_run (lease p_token, working at p_working) will be claimed for the next stage
-- under a lease of p_lease_s seconds (claim_stage's conditions); then the row is locked and the
-- run event of p_done is recorded. False changes nothing.
CREATE FUNCTION maas.passes_through(
  p_run uuid, p_token uuid, p_working maas.run_status, p_done maas.run_status, p_lease_s float8)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  IF p_lease_s IS NULL THEN
    RETURN false;
  END IF;
  SELECT x.thread_id, x.created_at, x.stop_at, x.next_attempt_at INTO r
  FROM maas.pipeline_runs x
  WHERE x.id = p_run AND x.status = p_working AND x.lease_token = p_token
  FOR UPDATE;
  IF NOT FOUND OR r.stop_at = p_done OR r.next_attempt_at > now() OR EXISTS (
      SELECT 1 FROM maas.pipeline_runs e
      WHERE e.thread_id = r.thread_id AND e.created_at < r.created_at
        AND e.status NOT IN ('COMPLETED', 'FAILED') AND e.status <> e.stop_at) THEN
    RETURN false;
  END IF;
  INSERT INTO maas.run_events (run_id, status, attempt, error) VALUES (p_run, p_done, 0, NULL);
  RETURN true;
END $$;

CREATE OR REPLACE FUNCTION maas.commit_analyze(
  p_run uuid, p_token uuid, p_output jsonb, p_version text, p_params jsonb,
  p_lease_s float8, p_worker text)
RETURNS maas.stage_commit LANGUAGE plpgsql AS $$
DECLARE
  result maas.stage_commit;
BEGIN
  IF maas.passes_through(p_run, p_token, 'ANALYZING', 'ANALYZED', p_lease_s) THEN
    UPDATE maas.pipeline_runs r
    SET status = 'ASSEMBLING', analyzer_output = p_output, param_version = p_version,
        params = p_params, analyzed_at = clock_timestamp(), attempts = 1,
        lease_token = gen_random_uuid(), claimed_by = p_worker,
        claimed_until = now() + make_interval(secs => p_lease_s), error = NULL
    WHERE r.id = p_run
    RETURNING true, r.id, r.user_id, r.thread_id, r.message_id, r.query, r.mode, r.stop_at::text,
              r.max_tokens, r.attempts, r.lease_token, r.params, r.param_version,
              r.analyzer_output, r.context_text
    INTO result;
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN result;
  END IF;
  UPDATE maas.pipeline_runs
  SET status = 'ANALYZED', analyzer_output = p_output, param_version = p_version,
      params = p_params, attempts = 0, lease_token = NULL, claimed_by = NULL,
      claimed_until = NULL, error = NULL
  WHERE id = p_run AND status = 'ANALYZING' AND lease_token = p_token;
  IF NOT FOUND THEN
    result.finished := false;
    RETURN result;
  END IF;
  RETURN maas.claim_stage(p_run, 'ANALYZED', 'ASSEMBLING', p_lease_s, p_worker);
END $$;

CREATE OR REPLACE FUNCTION maas.commit_assemble(
  p_run uuid, p_token uuid, p_context text, p_context_tokens integer,
  p_ids bigint[], p_scores real[], p_components jsonb, p_used boolean[], p_tokens integer[],
  p_lease_s float8, p_worker text)
RETURNS maas.stage_commit LANGUAGE plpgsql AS $$
DECLARE
  result maas.stage_commit;
  passes boolean := maas.passes_through(p_run, p_token, 'ASSEMBLING', 'READY', p_lease_s);
BEGIN
  IF passes THEN
    UPDATE maas.pipeline_runs r
    SET status = 'RESPONDING', context_text = p_context, context_tokens = p_context_tokens,
        ready_at = clock_timestamp(), attempts = 1, lease_token = gen_random_uuid(),
        claimed_by = p_worker, claimed_until = now() + make_interval(secs => p_lease_s),
        error = NULL
    WHERE r.id = p_run
    RETURNING true, r.id, r.user_id, r.thread_id, r.message_id, r.query, r.mode, r.stop_at::text,
              r.max_tokens, r.attempts, r.lease_token, r.params, r.param_version,
              r.analyzer_output, r.context_text
    INTO result;
  ELSE
    UPDATE maas.pipeline_runs
    SET status = 'READY', context_text = p_context, context_tokens = p_context_tokens,
        attempts = 0, lease_token = NULL, claimed_by = NULL, claimed_until = NULL, error = NULL
    WHERE id = p_run AND status = 'ASSEMBLING' AND lease_token = p_token;
    IF NOT FOUND THEN
      result.finished := false;
      RETURN result;
    END IF;
  END IF;
  IF cardinality(p_ids) > 0 THEN
    INSERT INTO maas.run_retrievals (run_id, memory_ids, scores, components, used, tokens)
    VALUES (p_run, p_ids, p_scores, p_components, p_used, p_tokens)
    ON CONFLICT (run_id) DO UPDATE
    SET memory_ids = excluded.memory_ids, scores = excluded.scores,
        components = excluded.components, used = excluded.used, tokens = excluded.tokens;
  ELSE
    DELETE FROM maas.run_retrievals WHERE run_id = p_run;
  END IF;
  IF passes THEN
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN result;
  END IF;
  RETURN maas.claim_stage(p_run, 'READY', 'RESPONDING', p_lease_s, p_worker);
END $$;
