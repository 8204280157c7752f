-- Definitions of the pipeline's database functions, trigger functions and views: the one current
-- text of each. Applied after the migrations (maas/db/migrate.py) whenever this file changes:
-- everything here is CREATE OR REPLACE. A change a replace cannot make (a view's columns, a
-- function's result type) needs a migration that drops the old object first.


-- Stamp the per-stage timestamp of every status a run enters.
CREATE OR REPLACE FUNCTION maas.stamp_run_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.status = OLD.status THEN
    RETURN NEW;
  END IF;
  CASE NEW.status
    WHEN 'ANALYZING' THEN NEW.analyzing_at := clock_timestamp();
    WHEN 'ANALYZED' THEN NEW.analyzed_at := clock_timestamp();
    WHEN 'ASSEMBLING' THEN NEW.assembling_at := clock_timestamp();
    WHEN 'READY' THEN NEW.ready_at := clock_timestamp();
    WHEN 'RESPONDING' THEN NEW.responding_at := clock_timestamp();
    WHEN 'COMPLETED' THEN NEW.completed_at := clock_timestamp();
    WHEN 'FAILED' THEN NEW.failed_at := clock_timestamp();
    ELSE NULL;
  END CASE;
  RETURN NEW;
END $$;

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

CREATE OR REPLACE FUNCTION maas.notify_archive_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('maas_archive', NEW.status || ':' || NEW.id::text);
  RETURN NULL;
END $$;

-- The shape of a stage attempt's LLM calls as the service sends them (a JSON array of CallLog,
-- maas/pipeline/calls.py), in one place: the stage commits and insert_llm_calls read it from here.
CREATE OR REPLACE FUNCTION maas.llm_call_rows(p_calls jsonb)
RETURNS TABLE (stage text, model text, prompt_tokens integer, completion_tokens integer, ms real,
               outcome text, error text)
LANGUAGE sql IMMUTABLE AS $$
  SELECT * FROM jsonb_to_recordset(p_calls) AS c(
    stage text, model text, prompt_tokens integer, completion_tokens integer, ms real,
    outcome text, error text)
$$;

-- The one insert of LLM calls: the calls of run p_run (or archive job p_job) of user p_user, a
-- JSON array of CallLog (maas.llm_call_rows). Every stage commit writes its attempt's calls with
-- it, and an attempt that does not commit writes them alone (insert_llm_calls).
CREATE OR REPLACE FUNCTION maas.log_llm_calls(
  p_run uuid, p_job bigint, p_user uuid, p_calls jsonb) RETURNS void LANGUAGE sql AS $$
  INSERT INTO maas.llm_calls
    (run_id, archive_job_id, user_id, stage, model, prompt_tokens, completion_tokens, ms,
     outcome, error)
  SELECT p_run, p_job, p_user, c.* FROM maas.llm_call_rows(p_calls) c
$$;

-- The thread-order rule, named once: a run of thread p_thread made at p_created waits while an
-- earlier run of its thread is unfinished (neither COMPLETED nor FAILED nor at its stop_at), so
-- a thread answers in order, across stages and processes; a run without a thread never waits.
-- This is that earlier run (one, if any). A set-returning SQL function, so the planner inlines
-- it where it is used: `(SELECT b FROM maas.blocking_run(...) b) IS NULL` is one index probe per
-- run looked at (runs_thread_idx, LIMIT 1); written as NOT EXISTS in a claim's queue scan, the
-- planner misjudged how many runs wait and hashed the whole table instead.
CREATE OR REPLACE FUNCTION maas.blocking_run(p_thread uuid, p_created timestamptz)
RETURNS SETOF uuid LANGUAGE sql STABLE AS $$
  SELECT e.id FROM maas.pipeline_runs e
  WHERE e.thread_id = p_thread AND e.created_at < p_created
    AND e.status NOT IN ('COMPLETED', 'FAILED') AND e.status <> e.stop_at
  LIMIT 1
$$;

-- A claimed run's row, the one shape every claim and stage commit returns (maas.claimed_run:
-- `finished` = the commit's guard held, then the claim's columns; maas/pipeline/claim.py reads
-- them by name).
CREATE OR REPLACE FUNCTION maas.claimed(r maas.pipeline_runs) RETURNS maas.claimed_run
LANGUAGE sql IMMUTABLE AS $$
  SELECT true, r.id, r.user_id, r.thread_id, r.message_id, r.query, r.mode, r.stop_at::text,
         r.max_tokens, r.attempts, r.lease_token, r.params, r.param_version, r.analyzer_output,
         r.context_text, r.responder_options
$$;

-- The express lane's claim of run p_run at p_from for the stage that works at p_to, under a
-- lease of p_lease_s seconds for worker p_worker (nothing when p_lease_s is null, when the run
-- is not waiting at p_from, or when an earlier run of its thread is unfinished). A claim makes
-- the transaction commit without waiting for the WAL flush: the express lane answers only after
-- the run's last commit (COMPLETED, READY of a /v1/context run, a failure or a release), which
-- is synchronous and flushes it (WAL is flushed in order); a crash before that loses an attempt
-- nobody was told about, and the run is claimed again.
CREATE OR REPLACE FUNCTION maas.claim_stage(
  p_run uuid, p_from maas.run_status, p_to maas.run_status, p_lease_s float8, p_worker text)
RETURNS maas.claimed_run LANGUAGE plpgsql AS $$
DECLARE
  result maas.claimed_run;
  claimed maas.pipeline_runs;
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
    AND (SELECT b FROM maas.blocking_run(r.thread_id, r.created_at) b) IS NULL
  RETURNING r.* INTO claimed;
  IF NOT FOUND THEN
    RETURN result;
  END IF;
  PERFORM set_config('synchronous_commit', 'off', true);
  RETURN maas.claimed(claimed);
END $$;

-- Fair claiming across users (migration 0030 explains the bound and the plan): each queue serves
-- its users in turn, the oldest claimable run of the user served least recently.
-- Record that user p_user was just served at queue p_queue; returns the turn's number.
CREATE OR REPLACE FUNCTION maas.take_turn(p_queue text, p_user uuid) RETURNS bigint LANGUAGE sql AS $$
  INSERT INTO maas.claim_turns (queue, user_id, served)
  VALUES (p_queue, p_user, nextval('maas.claim_turn_seq'))
  ON CONFLICT (queue, user_id) DO UPDATE SET served = excluded.served
  RETURNING served
$$;

-- How long a failed archive job waits before it is queued again (migration 0032):
-- p_retry_s * 2^rounds, at most a day.
CREATE OR REPLACE FUNCTION maas.archive_retry_after(p_rounds integer, p_retry_s float8)
RETURNS interval LANGUAGE sql IMMUTABLE AS $$
  SELECT make_interval(secs => least(p_retry_s * 2.0 ^ p_rounds, 86400))
$$;

-- Take the next run waiting at p_queue (see above), move it to p_working under a fresh lease of
-- p_lease_s seconds for worker p_worker; no row when nothing is claimable. The claim commits
-- without waiting for its WAL flush (lost in a database crash, it only leaves the run queued; the
-- stage's own commit, synchronous, flushes it anyway).
CREATE OR REPLACE FUNCTION maas.claim_run(
  p_queue text, p_working text, p_lease_s float8, p_worker text)
RETURNS SETOF maas.pipeline_runs
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  claimed maas.pipeline_runs;
BEGIN
  WITH RECURSIVE waiting (user_id) AS (  -- the users with runs at the queue: a skip scan
    (SELECT r.user_id FROM maas.pipeline_runs r
     WHERE r.status = p_queue::maas.run_status
       AND r.status IN ('NEW', 'ANALYZED', 'READY') AND r.stop_at <> r.status
     ORDER BY r.user_id LIMIT 1)
    UNION ALL
    SELECT (SELECT r.user_id FROM maas.pipeline_runs r
            WHERE r.status = p_queue::maas.run_status
              AND r.status IN ('NEW', 'ANALYZED', 'READY') AND r.stop_at <> r.status
              AND r.user_id > w.user_id
            ORDER BY r.user_id LIMIT 1)
    FROM waiting w WHERE w.user_id IS NOT NULL
  ), turns AS MATERIALIZED (  -- the waiting users, served least recently first
    SELECT w.user_id,
           coalesce((SELECT t.served FROM maas.claim_turns t  -- a key probe per user
                     WHERE t.queue = p_queue AND t.user_id = w.user_id), 0) AS served
    FROM waiting w WHERE w.user_id IS NOT NULL
    ORDER BY served
  ), candidates AS MATERIALIZED (  -- each user's first claimable runs, users in turn, until 64
    -- are found; computed once, not once per queued run
    SELECT c.id, c.place, u.served, c.created_at
    FROM turns u CROSS JOIN LATERAL (
      SELECT h.id, h.created_at, row_number() OVER (ORDER BY h.created_at) AS place
      FROM (SELECT r.id, r.thread_id, r.created_at, r.next_attempt_at
            FROM maas.pipeline_runs r
            WHERE r.status = p_queue::maas.run_status
              AND r.status IN ('NEW', 'ANALYZED', 'READY') AND r.stop_at <> r.status
              AND r.user_id = u.user_id
            ORDER BY r.created_at LIMIT 32) h
      WHERE h.next_attempt_at <= now()
        AND (SELECT b FROM maas.blocking_run(h.thread_id, h.created_at) b) IS NULL
      ORDER BY h.created_at LIMIT 8) c
    LIMIT 64
  ), next AS (
    -- the status test again: a row another claimer moved meanwhile is re-checked when locked
    SELECT r.id FROM candidates c JOIN maas.pipeline_runs r ON r.id = c.id
    WHERE r.status = p_queue::maas.run_status AND r.next_attempt_at <= now()
    ORDER BY c.place, c.served, c.created_at
    LIMIT 1
    FOR UPDATE OF r SKIP LOCKED
  )
  UPDATE maas.pipeline_runs r
  SET status = p_working::maas.run_status, attempts = r.attempts + 1,
      lease_token = gen_random_uuid(), claimed_by = p_worker,
      claimed_until = now() + make_interval(secs => p_lease_s)
  FROM next WHERE r.id = next.id
  RETURNING r.* INTO claimed;
  IF claimed.id IS NULL THEN
    RETURN;
  END IF;
  PERFORM maas.take_turn(p_queue, claimed.user_id);
  PERFORM set_config('synchronous_commit', 'off', true);
  RETURN NEXT claimed;
END $$;

-- True when run p_run (lease p_token, working at p_working) will be claimed for the next stage
-- under a lease of p_lease_s seconds (claim_stage's conditions); then the row is locked and the
-- run event of p_done is recorded. False changes nothing.
CREATE OR REPLACE FUNCTION maas.passes_through(
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
  IF NOT FOUND OR r.stop_at = p_done OR r.next_attempt_at > now()
     OR EXISTS (SELECT FROM maas.blocking_run(r.thread_id, r.created_at)) THEN
    RETURN false;
  END IF;
  INSERT INTO maas.run_events (run_id, status, attempt, error) VALUES (p_run, p_done, 0, NULL);
  RETURN true;
END $$;

CREATE OR REPLACE FUNCTION maas.submit_run(
  p_run uuid, p_user uuid, p_thread uuid, p_title text, p_query text, p_mode text, p_stop_at text,
  p_client_type text, p_idempotency_key text, p_max_tokens integer,
  p_lease_s float8, p_worker text, p_responder_options jsonb,
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
  claimed := p_lease_s IS NOT NULL
    AND NOT EXISTS (SELECT FROM maas.blocking_run(submit_run.thread_id, 'infinity'));

  INSERT INTO maas.pipeline_runs
    (id, user_id, thread_id, message_id, query, mode, stop_at, client_type, idempotency_key,
     max_tokens, responder_options, status, attempts, lease_token, claimed_by, claimed_until)
  VALUES (p_run, p_user, thread_id, message_id, p_query,
          coalesce((SELECT u.llm_mode FROM maas.users u WHERE u.id = p_user), p_mode),
          p_stop_at::maas.run_status, p_client_type, p_idempotency_key, p_max_tokens,
          p_responder_options,
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

-- The analyzer's commit (one statement: maas/pipeline/repo.py): run p_run (lease p_token) gets
-- its analysis p_output and the parameters frozen for it (p_version, p_params); with p_lease_s,
-- the assembler's claim for worker p_worker. The attempt's LLM calls (p_calls, of user p_user)
-- are written whether or not the guard holds.
CREATE OR REPLACE FUNCTION maas.commit_analyze(
  p_run uuid, p_token uuid, p_output jsonb, p_version text, p_params jsonb,
  p_lease_s float8, p_worker text, p_user uuid, p_calls jsonb)
RETURNS maas.claimed_run LANGUAGE plpgsql AS $$
DECLARE
  result maas.claimed_run;
  claimed maas.pipeline_runs;
BEGIN
  PERFORM maas.log_llm_calls(p_run, NULL, p_user, p_calls);
  IF maas.passes_through(p_run, p_token, 'ANALYZING', 'ANALYZED', p_lease_s) THEN
    UPDATE maas.pipeline_runs r
    SET status = 'ASSEMBLING', analyzer_output = p_output, param_version = p_version,
        params = p_params, analyzed_at = clock_timestamp(), attempts = 1,
        lease_token = gen_random_uuid(), claimed_by = p_worker,
        claimed_until = now() + make_interval(secs => p_lease_s), error = NULL
    WHERE r.id = p_run
    RETURNING r.* INTO claimed;
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN maas.claimed(claimed);
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

-- A run's stage_spans with stage p_stage's spans p_spans (the attempt that commits: a retry's
-- replace the failed attempt's, which were never written).
CREATE OR REPLACE FUNCTION maas.with_stage_spans(p_all jsonb, p_stage text, p_spans jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(p_all, '{}'::jsonb) || jsonb_build_object(p_stage, p_spans)
$$;

-- The assembler's commit: run p_run (lease p_token) gets its packed context (p_context,
-- p_context_tokens), every candidate (parallel arrays in rank order: p_ids, p_scores,
-- p_components, p_used, p_tokens) and what its time went to (p_spans, the assembler's entry of
-- stage_spans); with p_lease_s, the responder's claim for p_worker; the attempt's LLM calls
-- (p_calls, of user p_user) as in commit_analyze.
CREATE OR REPLACE FUNCTION maas.commit_assemble(
  p_run uuid, p_token uuid, p_context text, p_context_tokens integer,
  p_ids bigint[], p_scores real[], p_components jsonb, p_used boolean[], p_tokens integer[],
  p_lease_s float8, p_worker text, p_user uuid, p_calls jsonb, p_spans jsonb)
RETURNS maas.claimed_run LANGUAGE plpgsql AS $$
DECLARE
  result maas.claimed_run;
  claimed maas.pipeline_runs;
  passes boolean;
BEGIN
  PERFORM maas.log_llm_calls(p_run, NULL, p_user, p_calls);
  passes := maas.passes_through(p_run, p_token, 'ASSEMBLING', 'READY', p_lease_s);
  IF passes THEN
    UPDATE maas.pipeline_runs r
    SET status = 'RESPONDING', context_text = p_context, context_tokens = p_context_tokens,
        stage_spans = maas.with_stage_spans(r.stage_spans, 'assembler', p_spans),
        ready_at = clock_timestamp(), attempts = 1, lease_token = gen_random_uuid(),
        claimed_by = p_worker, claimed_until = now() + make_interval(secs => p_lease_s),
        error = NULL
    WHERE r.id = p_run
    RETURNING r.* INTO claimed;
    result := maas.claimed(claimed);
  ELSE
    UPDATE maas.pipeline_runs
    SET status = 'READY', context_text = p_context, context_tokens = p_context_tokens,
        stage_spans = maas.with_stage_spans(stage_spans, 'assembler', p_spans),
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

-- The responder's commit, the run's last: run p_run (lease p_token) becomes COMPLETED with answer
-- p_answer, which is also the assistant's message in thread p_thread of user p_user (a second
-- insert for the same run is a no-op) and touches the thread. No row when the guard does not hold
-- (the lease was lost). It claims nothing; it returns the finished run, so the request that drove
-- it has its reply. The attempt's LLM calls (p_calls) are written whether or not the guard holds.
CREATE OR REPLACE FUNCTION maas.commit_respond(
  p_thread uuid, p_user uuid, p_run uuid, p_token uuid, p_answer text, p_calls jsonb)
RETURNS SETOF maas.pipeline_runs LANGUAGE plpgsql AS $$
DECLARE
  done maas.pipeline_runs;
BEGIN
  PERFORM maas.log_llm_calls(p_run, NULL, p_user, p_calls);
  UPDATE maas.pipeline_runs
  SET status = 'COMPLETED', answer = p_answer,
      attempts = 0, lease_token = NULL, claimed_by = NULL, claimed_until = NULL, error = NULL
  WHERE id = p_run AND status = 'RESPONDING' AND lease_token = p_token
  RETURNING * INTO done;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  IF p_thread IS NOT NULL THEN
    INSERT INTO maas.messages (thread_id, user_id, run_id, role, content)
    VALUES (p_thread, p_user, p_run, 'assistant', p_answer)
    ON CONFLICT (run_id) WHERE role = 'assistant' DO NOTHING;
    UPDATE maas.threads SET last_message_at = now() WHERE id = p_thread;
  END IF;
  RETURN NEXT done;
END $$;

-- maas.run_memories (migration 0016) reads each row's components with `components -> (rank - 1)`,
-- which detoasted and decompressed the run's whole JSON array (~10 kB for 200 candidates) once
-- per memory. ROWS FROM walks the five arrays side by side, each read once: the same rows.
CREATE OR REPLACE VIEW maas.run_memories AS
SELECT r.run_id, u.memory_id, u.rank::integer AS rank, u.score, u.components, u.used, u.tokens
FROM maas.run_retrievals r
CROSS JOIN LATERAL ROWS FROM (
  unnest(r.memory_ids), unnest(r.scores), jsonb_array_elements(r.components), unnest(r.used),
  unnest(r.tokens)
) WITH ORDINALITY AS u(memory_id, score, components, used, tokens, rank);

-- Per-turn archiving (issue 17, migration 0034): when a chat run of a thread completes, its turn
-- (the user's message and the answer) is queued for the archivist in the same transaction, so a
-- fact is searchable from any thread moments later, without a close. Offline (the run's mode)
-- each turn is a job of its own, claimable now. With an LLM the thread's turns batch: its queued
-- turn job grows to the new turn and becomes claimable once it holds maas.turn_batch_turns user
-- turns, or maas.turn_batch_wait_s seconds after it was queued (the service's session settings,
-- MAAS_TURN_BATCH_TURNS and MAAS_TURN_BATCH_WAIT_S). maas.turn_archive = 'off' queues nothing.
-- Nothing is archived twice by turn jobs: a run completes once (the guarded commit), a turn
-- job's (thread, upto) is unique and every slice starts at the thread's archived mark, which a
-- dialog pass (close, idle: migration 0038) advances too; the pass itself reads the turns again
-- and the memory store merges what they already made. A crash loses nothing: the job commits with the run.
CREATE OR REPLACE FUNCTION maas.queue_turn_archive() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  last_id bigint;
  mark bigint;
  batch integer := 1;
  wait_s float8 := 0;
  grown bigint;
BEGIN
  IF coalesce(current_setting('maas.turn_archive', true), 'on') = 'off' THEN
    RETURN NULL;
  END IF;
  IF NEW.mode <> 'offline' THEN
    batch := coalesce(nullif(current_setting('maas.turn_batch_turns', true), '')::integer, 1);
    wait_s := coalesce(nullif(current_setting('maas.turn_batch_wait_s', true), '')::float8, 0);
  END IF;
  SELECT t.archived_upto, (SELECT max(m.id) FROM maas.messages m WHERE m.thread_id = t.id)
  INTO mark, last_id FROM maas.threads t WHERE t.id = NEW.thread_id;
  IF last_id IS NULL OR last_id <= mark THEN
    RETURN NULL;
  END IF;
  IF batch > 1 THEN
    grown := maas.grow_turn_job(NEW.thread_id, mark, last_id, batch);
    IF grown IS NOT NULL THEN
      RETURN NULL;
    END IF;
  END IF;
  INSERT INTO maas.archive_jobs (thread_id, user_id, upto_message_id, reason, next_attempt_at)
  VALUES (NEW.thread_id, NEW.user_id, last_id, 'turn',
          now() + make_interval(secs => CASE WHEN batch > 1 THEN wait_s ELSE 0 END))
  ON CONFLICT (thread_id, upto_message_id, scope) DO NOTHING;
  RETURN NULL;
END $$;

-- LLM-mode batching: the thread's queued turn job (if any) now covers up to p_last; it becomes
-- claimable at once when the unarchived range after p_mark holds p_batch user turns (a NOTIFY
-- wakes the archivist). Returns the job, or null when there is none to grow.
CREATE OR REPLACE FUNCTION maas.grow_turn_job(
  p_thread uuid, p_mark bigint, p_last bigint, p_batch integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  job bigint;
  turns integer;
BEGIN
  SELECT count(*) INTO turns FROM (
    SELECT 1 FROM maas.messages m
    WHERE m.thread_id = p_thread AND m.id > p_mark AND m.id <= p_last AND m.role = 'user'
    LIMIT p_batch) u;
  UPDATE maas.archive_jobs j
  SET upto_message_id = p_last,
      next_attempt_at = CASE WHEN turns >= p_batch THEN now() ELSE j.next_attempt_at END
  WHERE j.id = (SELECT x.id FROM maas.archive_jobs x
                WHERE x.thread_id = p_thread AND x.status = 'queued' AND x.reason = 'turn'
                  AND x.upto_message_id < p_last ORDER BY x.id DESC LIMIT 1)
    AND j.status = 'queued'
    AND NOT EXISTS (SELECT 1 FROM maas.archive_jobs o
                    WHERE o.thread_id = p_thread AND o.upto_message_id = p_last
                      AND o.scope = 'turn')
  RETURNING j.id INTO job;
  IF job IS NOT NULL AND turns >= p_batch THEN
    PERFORM pg_notify('maas_archive', 'queued:' || job::text);
  END IF;
  RETURN job;
END $$;

-- Deferred to the commit: the responder's commit inserts the answer after it sets COMPLETED, and
-- the turn is both messages. (A constraint trigger cannot be replaced: dropped and made again.)
DROP TRIGGER IF EXISTS runs_turn_archive ON maas.pipeline_runs;
CREATE CONSTRAINT TRIGGER runs_turn_archive AFTER UPDATE OF status ON maas.pipeline_runs
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
WHEN (NEW.status = 'COMPLETED' AND OLD.status <> 'COMPLETED' AND NEW.stop_at = 'COMPLETED'
      AND NEW.thread_id IS NOT NULL)
EXECUTE FUNCTION maas.queue_turn_archive();
