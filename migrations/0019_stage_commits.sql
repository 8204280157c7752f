-- Each stage's commit in one statement: its guarded writes, and, for the express lane, the claim
-- of the run's next stage.
--
-- A stage committed in a transaction of four or five round trips (BEGIN, its writes, the guarded
-- status change, the next stage's claim, COMMIT). These functions run the same statements in the
-- same order, so every status is still entered on its own (the triggers stamp it, record its
-- run event and NOTIFY), and the whole commit stays atomic: a guard that does not hold (the lease
-- was lost) changes nothing. They return maas.stage_commit: `finished` (the guard held) and,
-- when the next stage was claimed, the claimed run's columns (as claim_run returns them).
CREATE TYPE maas.stage_commit AS (
  finished boolean,
  id uuid, user_id uuid, thread_id uuid, message_id bigint, query text, mode text, stop_at text,
  max_tokens integer, attempts integer, lease_token uuid, params jsonb, param_version text,
  analyzer_output jsonb, context_text text
);

-- The express lane's claim of run p_run at p_from for the stage that works at p_to, under a
-- lease of p_lease_s seconds for worker p_worker (nothing when p_lease_s is null, when the run
-- is not waiting at p_from, or when an earlier run of its thread is unfinished). A claim makes
-- the transaction commit without waiting for the WAL flush: the express lane answers only after
-- the run's last commit (COMPLETED, READY of a /v1/context run, a failure or a release), which
-- is synchronous and flushes it (WAL is flushed in order); a crash before that loses an attempt
-- nobody was told about, and the run is claimed again.
CREATE FUNCTION maas.claim_stage(
  p_run uuid, p_from maas.run_status, p_to maas.run_status, p_lease_s float8, p_worker text)
RETURNS maas.stage_commit LANGUAGE plpgsql AS $$
DECLARE
  result maas.stage_commit;
BEGIN
  result.finished := true;
  IF p_lease_s IS NULL THEN
    RETURN result;
  END IF;
  UPDATE maas.pipeline_runs r
  SET status = p_to, attempts = r.attempts + 1, lease_token = gen_random_uuid(),
      claimed_by = p_worker, claimed_until = now() + make_interval(secs => p_lease_s)
  WHERE r.id = p_run AND r.status = p_from AND r.stop_at <> r.status
    AND r.next_attempt_at <= now()
    AND NOT EXISTS (
      SELECT 1 FROM maas.pipeline_runs e
      WHERE e.thread_id = r.thread_id AND e.created_at < r.created_at
        AND e.status NOT IN ('COMPLETED', 'FAILED') AND e.status <> e.stop_at)
  RETURNING r.id, r.user_id, r.thread_id, r.message_id, r.query, r.mode, r.stop_at::text,
            r.max_tokens, r.attempts, r.lease_token, r.params, r.param_version,
            r.analyzer_output, r.context_text
  INTO result.id, result.user_id, result.thread_id, result.message_id, result.query,
       result.mode, result.stop_at, result.max_tokens, result.attempts, result.lease_token,
       result.params, result.param_version, result.analyzer_output, result.context_text;
  IF FOUND THEN
    PERFORM set_config('synchronous_commit', 'off', true);
  END IF;
  RETURN result;
END $$;

-- The analyzer's commit: run p_run (lease p_token) becomes ANALYZED with its output and frozen
-- parameters; then, with p_lease_s, the assembler's claim.
CREATE FUNCTION maas.commit_analyze(
  p_run uuid, p_token uuid, p_output jsonb, p_version text, p_params jsonb,
  p_lease_s float8, p_worker text)
RETURNS maas.stage_commit LANGUAGE plpgsql AS $$
DECLARE
  result maas.stage_commit;
BEGIN
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

-- The assembler's commit: the run's retrieved memories (parallel arrays in rank order, one row:
-- migration 0016; none found replaces what an earlier attempt wrote with nothing), the packed
-- context, READY; then, with p_lease_s, the responder's claim.
CREATE FUNCTION maas.commit_assemble(
  p_run uuid, p_token uuid, p_context text, p_context_tokens integer,
  p_ids bigint[], p_scores real[], p_components jsonb, p_used boolean[], p_tokens integer[],
  p_lease_s float8, p_worker text)
RETURNS maas.stage_commit LANGUAGE plpgsql AS $$
DECLARE
  result maas.stage_commit;
BEGIN
  UPDATE maas.pipeline_runs
  SET status = 'READY', context_text = p_context, context_tokens = p_context_tokens,
      attempts = 0, lease_token = NULL, claimed_by = NULL, claimed_until = NULL, error = NULL
  WHERE id = p_run AND status = 'ASSEMBLING' AND lease_token = p_token;
  IF NOT FOUND THEN
    result.finished := false;
    RETURN result;
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
  RETURN maas.claim_stage(p_run, 'READY', 'RESPONDING', p_lease_s, p_worker);
END $$;
