-- Generated (python -m maas.db.snapshot): the schema of a freshly migrated database.
CREATE SCHEMA maas;

CREATE TYPE maas.claimed_run AS (
	finished boolean,
	id uuid,
	user_id uuid,
	thread_id uuid,
	message_id bigint,
	query text,
	mode text,
	stop_at text,
	max_tokens integer,
	attempts integer,
	lease_token uuid,
	params jsonb,
	param_version text,
	analyzer_output jsonb,
	context_text text,
	responder_options jsonb
);

CREATE TYPE maas.run_status AS ENUM (
    'NEW',
    'ANALYZING',
    'ANALYZED',
    'ASSEMBLING',
    'READY',
    'RESPONDING',
    'COMPLETED',
    'FAILED'
);

CREATE FUNCTION maas.add_memory_sources() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  INSERT INTO maas.memory_sources (message_id, memory_id)
  SELECT DISTINCT s.mid, n.id
  FROM new_rows n CROSS JOIN LATERAL unnest(n.source_message_ids) AS s(mid)
  ORDER BY 1, 2  -- one lock order for concurrent writers
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;

CREATE FUNCTION maas.add_memory_stats() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  INSERT INTO maas.memory_stats AS s (user_id, docs, total_len)
  SELECT user_id, count(*), sum(length(search)) FROM new_rows WHERE valid_to IS NULL
  GROUP BY user_id
  ON CONFLICT (user_id) DO UPDATE
    SET docs = s.docs + excluded.docs, total_len = s.total_len + excluded.total_len;
  RETURN NULL;
END $$;

CREATE FUNCTION maas.add_memory_terms() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  INSERT INTO maas.memory_terms (user_id, lexeme, memory_id, tf, doclen, valid, context)
  SELECT n.user_id, u.lexeme, n.id, cardinality(u.positions), length(n.search),
         n.valid_to IS NULL, false
  FROM new_rows n CROSS JOIN LATERAL unnest(n.search) AS u(lexeme, positions, weights)
  UNION ALL
  SELECT n.user_id, c.lexeme, n.id, 1, length(n.search), n.valid_to IS NULL, true
  FROM new_rows n CROSS JOIN LATERAL unnest(tsvector_to_array(n.context_search)) AS c(lexeme)
  WHERE c.lexeme <> ALL (tsvector_to_array(n.search))
  ORDER BY 1, 2, 3;  -- one lock order for concurrent writers
  RETURN NULL;
END $$;

CREATE FUNCTION maas.archive_retry_after(p_rounds integer, p_retry_s double precision) RETURNS interval
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT make_interval(secs => least(p_retry_s * 2.0 ^ p_rounds, 86400))
$$;

CREATE FUNCTION maas.blocking_run(p_thread uuid, p_created timestamp with time zone) RETURNS SETOF uuid
    LANGUAGE sql STABLE
    AS $$
  SELECT e.id FROM maas.pipeline_runs e
  WHERE e.thread_id = p_thread AND e.created_at < p_created
    AND e.status NOT IN ('COMPLETED', 'FAILED') AND e.status <> e.stop_at
  LIMIT 1
$$;

CREATE TABLE maas.pipeline_runs (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    thread_id uuid,
    message_id bigint,
    query text NOT NULL,
    status maas.run_status DEFAULT 'NEW'::maas.run_status NOT NULL,
    stop_at maas.run_status DEFAULT 'COMPLETED'::maas.run_status NOT NULL,
    mode text NOT NULL,
    client_type text DEFAULT 'client'::text NOT NULL,
    idempotency_key text,
    max_tokens integer,
    attempts integer DEFAULT 0 NOT NULL,
    lease_token uuid,
    claimed_by text,
    claimed_until timestamp with time zone,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    param_version text,
    params jsonb,
    analyzer_output jsonb,
    context_text text,
    context_tokens integer,
    answer text,
    error text,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    analyzing_at timestamp with time zone,
    analyzed_at timestamp with time zone,
    assembling_at timestamp with time zone,
    ready_at timestamp with time zone,
    responding_at timestamp with time zone,
    completed_at timestamp with time zone,
    failed_at timestamp with time zone,
    stage_spans jsonb,
    responder_options jsonb,
    CONSTRAINT pipeline_runs_client_type_check CHECK ((client_type = ANY (ARRAY['client'::text, 'emulator'::text, 'test-runner'::text, 'bench'::text, 'openai'::text]))),
    CONSTRAINT pipeline_runs_stop_at_check CHECK ((stop_at = ANY (ARRAY['READY'::maas.run_status, 'COMPLETED'::maas.run_status])))
);

COMMENT ON COLUMN maas.pipeline_runs.client_type IS 'client (real traffic), emulator, test-runner or bench: from the X-MaaS-Client header';

CREATE FUNCTION maas.claim_run(p_queue text, p_working text, p_lease_s double precision, p_worker text) RETURNS SETOF maas.pipeline_runs
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
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

CREATE FUNCTION maas.claim_stage(p_run uuid, p_from maas.run_status, p_to maas.run_status, p_lease_s double precision, p_worker text) RETURNS maas.claimed_run
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION maas.claimed(r maas.pipeline_runs) RETURNS maas.claimed_run
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT true, r.id, r.user_id, r.thread_id, r.message_id, r.query, r.mode, r.stop_at::text,
         r.max_tokens, r.attempts, r.lease_token, r.params, r.param_version, r.analyzer_output,
         r.context_text, r.responder_options
$$;

CREATE FUNCTION maas.commit_analyze(p_run uuid, p_token uuid, p_output jsonb, p_version text, p_params jsonb, p_lease_s double precision, p_worker text, p_user uuid, p_calls jsonb) RETURNS maas.claimed_run
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION maas.commit_assemble(p_run uuid, p_token uuid, p_context text, p_context_tokens integer, p_ids bigint[], p_scores real[], p_components jsonb, p_used boolean[], p_tokens integer[], p_lease_s double precision, p_worker text, p_user uuid, p_calls jsonb, p_spans jsonb) RETURNS maas.claimed_run
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION maas.commit_respond(p_thread uuid, p_user uuid, p_run uuid, p_token uuid, p_answer text, p_calls jsonb) RETURNS SETOF maas.pipeline_runs
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION maas.drop_test_run_user() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  DELETE FROM maas.users WHERE id = OLD.user_id;
  DELETE FROM maas.memory_stats WHERE user_id = OLD.user_id;
  RETURN NULL;
END $$;

CREATE FUNCTION maas.grow_turn_job(p_thread uuid, p_mark bigint, p_last bigint, p_batch integer) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION maas.llm_call_rows(p_calls jsonb) RETURNS TABLE(stage text, model text, prompt_tokens integer, completion_tokens integer, ms real, outcome text, error text)
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT * FROM jsonb_to_recordset(p_calls) AS c(
    stage text, model text, prompt_tokens integer, completion_tokens integer, ms real,
    outcome text, error text)
$$;

CREATE FUNCTION maas.log_llm_calls(p_run uuid, p_job bigint, p_user uuid, p_calls jsonb) RETURNS void
    LANGUAGE sql
    AS $$
  INSERT INTO maas.llm_calls
    (run_id, archive_job_id, user_id, stage, model, prompt_tokens, completion_tokens, ms,
     outcome, error)
  SELECT p_run, p_job, p_user, c.* FROM maas.llm_call_rows(p_calls) c
$$;

CREATE FUNCTION maas.memory_lexemes(p_search tsvector, p_context tsvector) RETURNS text[]
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT tsvector_to_array(p_search) || coalesce(tsvector_to_array(p_context), '{}')
$$;

CREATE FUNCTION maas.memory_speaker() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  NEW.speaker := (SELECT s.speaker FROM maas.messages s
                  WHERE s.id = NEW.source_message_ids[cardinality(NEW.source_message_ids)]);
  RETURN NEW;
END $$;

CREATE FUNCTION maas.notify_archive_job() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  PERFORM pg_notify('maas_archive', NEW.status || ':' || NEW.id::text);
  RETURN NULL;
END $$;

CREATE FUNCTION maas.notify_run_status() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION maas.passes_through(p_run uuid, p_token uuid, p_working maas.run_status, p_done maas.run_status, p_lease_s double precision) RETURNS boolean
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION maas.queue_turn_archive() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION maas.remove_memory_sources() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  DELETE FROM maas.memory_sources s USING old_rows o WHERE s.memory_id = o.id;
  RETURN NULL;
END $$;

CREATE FUNCTION maas.remove_memory_stats() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  INSERT INTO maas.memory_stats AS s (user_id, docs, total_len)
  SELECT user_id, -count(*), -sum(length(search)) FROM old_rows WHERE valid_to IS NULL
  GROUP BY user_id
  ON CONFLICT (user_id) DO UPDATE
    SET docs = s.docs + excluded.docs, total_len = s.total_len + excluded.total_len;
  RETURN NULL;
END $$;

CREATE FUNCTION maas.remove_memory_terms() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  DELETE FROM maas.memory_terms t
  USING (SELECT o.user_id, o.id, unnest(maas.memory_lexemes(o.search, o.context_search)) AS lexeme
         FROM old_rows o) d
  WHERE t.user_id = d.user_id AND t.lexeme = d.lexeme AND t.memory_id = d.id;
  RETURN NULL;
END $$;

CREATE FUNCTION maas.stamp_run_status() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION maas.submit_run(p_run uuid, p_user uuid, p_thread uuid, p_title text, p_query text, p_mode text, p_stop_at text, p_client_type text, p_idempotency_key text, p_max_tokens integer, p_lease_s double precision, p_worker text, p_responder_options jsonb, OUT run_id uuid, OUT thread_id uuid, OUT message_id bigint, OUT mode text, OUT lease_token uuid) RETURNS record
    LANGUAGE plpgsql
    AS $$
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

CREATE FUNCTION maas.take_turn(p_queue text, p_user uuid) RETURNS bigint
    LANGUAGE sql
    AS $$
  INSERT INTO maas.claim_turns (queue, user_id, served)
  VALUES (p_queue, p_user, nextval('maas.claim_turn_seq'))
  ON CONFLICT (queue, user_id) DO UPDATE SET served = excluded.served
  RETURNING served
$$;

CREATE FUNCTION maas.track_memory_stats() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
  d_docs integer := 0;
  d_len integer := 0;
  uid uuid;
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.valid_to IS NULL THEN
    d_docs := d_docs + 1; d_len := d_len + length(NEW.search); uid := NEW.user_id;
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.valid_to IS NULL THEN
    d_docs := d_docs - 1; d_len := d_len - length(OLD.search); uid := OLD.user_id;
  END IF;
  IF d_docs <> 0 OR d_len <> 0 THEN
    INSERT INTO maas.memory_stats AS s (user_id, docs, total_len) VALUES (uid, d_docs, d_len)
    ON CONFLICT (user_id) DO UPDATE
      SET docs = s.docs + excluded.docs, total_len = s.total_len + excluded.total_len;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION maas.update_memory_sources() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF NEW.source_message_ids IS DISTINCT FROM OLD.source_message_ids THEN
    DELETE FROM maas.memory_sources
    WHERE memory_id = NEW.id AND NOT (message_id = ANY (NEW.source_message_ids));
    INSERT INTO maas.memory_sources (message_id, memory_id)
    SELECT DISTINCT s.mid, NEW.id FROM unnest(NEW.source_message_ids) AS s(mid)
    ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION maas.update_memory_terms() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  IF NEW.search IS DISTINCT FROM OLD.search
     OR NEW.context_search IS DISTINCT FROM OLD.context_search THEN
    DELETE FROM maas.memory_terms
    WHERE user_id = OLD.user_id
      AND lexeme = ANY (maas.memory_lexemes(OLD.search, OLD.context_search))
      AND memory_id = OLD.id;
    INSERT INTO maas.memory_terms (user_id, lexeme, memory_id, tf, doclen, valid, context)
    SELECT NEW.user_id, u.lexeme, NEW.id, cardinality(u.positions), length(NEW.search),
           NEW.valid_to IS NULL, false
    FROM unnest(NEW.search) AS u(lexeme, positions, weights)
    UNION ALL
    SELECT NEW.user_id, c.lexeme, NEW.id, 1, length(NEW.search), NEW.valid_to IS NULL, true
    FROM unnest(tsvector_to_array(NEW.context_search)) AS c(lexeme)
    WHERE c.lexeme <> ALL (tsvector_to_array(NEW.search));
  ELSIF (NEW.valid_to IS NULL) IS DISTINCT FROM (OLD.valid_to IS NULL) THEN
    UPDATE maas.memory_terms SET valid = NEW.valid_to IS NULL
    WHERE user_id = NEW.user_id
      AND lexeme = ANY (maas.memory_lexemes(NEW.search, NEW.context_search))
      AND memory_id = NEW.id;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION maas.with_stage_spans(p_all jsonb, p_stage text, p_spans jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT coalesce(p_all, '{}'::jsonb) || jsonb_build_object(p_stage, p_spans)
$$;

CREATE TABLE maas.archive_jobs (
    id bigint NOT NULL,
    thread_id uuid NOT NULL,
    user_id uuid NOT NULL,
    upto_message_id bigint NOT NULL,
    reason text NOT NULL,
    status text DEFAULT 'queued'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    lease_token uuid,
    claimed_by text,
    claimed_until timestamp with time zone,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    memories_created integer DEFAULT 0 NOT NULL,
    error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    rounds integer DEFAULT 0 NOT NULL,
    scope text GENERATED ALWAYS AS (
CASE
    WHEN (reason = 'turn'::text) THEN 'turn'::text
    ELSE 'dialog'::text
END) STORED NOT NULL,
    CONSTRAINT archive_jobs_reason_check CHECK ((reason = ANY (ARRAY['closed'::text, 'idle'::text, 'import'::text, 'turn'::text]))),
    CONSTRAINT archive_jobs_status_check CHECK ((status = ANY (ARRAY['queued'::text, 'running'::text, 'done'::text, 'failed'::text])))
);

ALTER TABLE maas.archive_jobs ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME maas.archive_jobs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE SEQUENCE maas.claim_turn_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

CREATE TABLE maas.claim_turns (
    queue text NOT NULL,
    user_id uuid NOT NULL,
    served bigint NOT NULL
);

CREATE TABLE maas.llm_calls (
    id bigint NOT NULL,
    run_id uuid,
    archive_job_id bigint,
    user_id uuid,
    stage text NOT NULL,
    model text NOT NULL,
    prompt_tokens integer DEFAULT 0 NOT NULL,
    completion_tokens integer DEFAULT 0 NOT NULL,
    ms real NOT NULL,
    outcome text NOT NULL,
    error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT llm_calls_outcome_check CHECK ((outcome = ANY (ARRAY['ok'::text, 'error'::text, 'invalid'::text, 'timeout'::text])))
);

ALTER TABLE maas.llm_calls ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME maas.llm_calls_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE maas.memories (
    id bigint NOT NULL,
    user_id uuid NOT NULL,
    text text NOT NULL,
    kind text DEFAULT 'fact'::text NOT NULL,
    slot text,
    fact_key text NOT NULL,
    search tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED,
    embedding public.vector(384),
    importance real DEFAULT 0.5 NOT NULL,
    event_time timestamp with time zone,
    valid_from timestamp with time zone DEFAULT now() NOT NULL,
    valid_to timestamp with time zone,
    superseded_by bigint,
    source_message_ids bigint[] DEFAULT '{}'::bigint[] NOT NULL,
    source_thread_id uuid,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    line_tokens integer,
    speaker text,
    context_search tsvector,
    CONSTRAINT memories_importance_check CHECK (((importance >= (0)::double precision) AND (importance <= (1)::double precision)))
);

ALTER TABLE maas.memories ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME maas.memories_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE maas.memory_sources (
    message_id bigint NOT NULL,
    memory_id bigint NOT NULL
);

CREATE TABLE maas.memory_stats (
    user_id uuid NOT NULL,
    docs bigint DEFAULT 0 NOT NULL,
    total_len bigint DEFAULT 0 NOT NULL
);

CREATE TABLE maas.memory_terms (
    user_id uuid NOT NULL,
    lexeme text NOT NULL,
    memory_id bigint NOT NULL,
    tf integer NOT NULL,
    doclen integer NOT NULL,
    valid boolean NOT NULL,
    context boolean DEFAULT false NOT NULL
);

CREATE TABLE maas.messages (
    id bigint NOT NULL,
    thread_id uuid NOT NULL,
    user_id uuid NOT NULL,
    run_id uuid,
    role text NOT NULL,
    speaker text,
    content text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT messages_role_check CHECK ((role = ANY (ARRAY['user'::text, 'assistant'::text, 'other'::text])))
);

ALTER TABLE maas.messages ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME maas.messages_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE maas.run_events (
    id bigint NOT NULL,
    run_id uuid NOT NULL,
    status maas.run_status NOT NULL,
    attempt integer NOT NULL,
    error text,
    at timestamp with time zone DEFAULT clock_timestamp() NOT NULL
);

ALTER TABLE maas.run_events ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME maas.run_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE maas.run_retrievals (
    run_id uuid NOT NULL,
    memory_ids bigint[] NOT NULL,
    scores real[] NOT NULL,
    components jsonb NOT NULL,
    used boolean[] NOT NULL,
    tokens integer[] NOT NULL,
    CONSTRAINT run_retrievals_check CHECK (((cardinality(memory_ids) = cardinality(scores)) AND (cardinality(memory_ids) = cardinality(used)) AND (cardinality(memory_ids) = cardinality(tokens)) AND (jsonb_array_length(components) = cardinality(memory_ids))))
);

CREATE VIEW maas.run_memories AS
 SELECT r.run_id,
    u.memory_id,
    (u.rank)::integer AS rank,
    u.score,
    u.components,
    u.used,
    u.tokens
   FROM (maas.run_retrievals r
     CROSS JOIN LATERAL ROWS FROM(unnest(r.memory_ids), unnest(r.scores), jsonb_array_elements(r.components), unnest(r.used), unnest(r.tokens)) WITH ORDINALITY u(memory_id, score, components, used, tokens, rank));

CREATE TABLE maas.schema_definitions (
    file text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE maas.schema_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE maas.sessions (
    token_hash text NOT NULL,
    user_id uuid,
    key_hash text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL
);

CREATE TABLE maas.test_run_steps (
    test_run_id uuid NOT NULL,
    idx integer NOT NULL,
    action text NOT NULL,
    description text NOT NULL,
    user_name text NOT NULL,
    thread_name text NOT NULL,
    run_id uuid,
    thread_id uuid,
    passed boolean NOT NULL,
    checks jsonb DEFAULT '[]'::jsonb NOT NULL,
    ms real DEFAULT 0 NOT NULL,
    finished_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL
);

CREATE TABLE maas.test_run_users (
    test_run_id uuid NOT NULL,
    name text NOT NULL,
    user_id uuid NOT NULL
);

CREATE TABLE maas.test_runs (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    owner_id uuid,
    suite_name text NOT NULL,
    suite_hash text NOT NULL,
    suite jsonb NOT NULL,
    mode text NOT NULL,
    status text DEFAULT 'running'::text NOT NULL,
    error text,
    steps_total integer NOT NULL,
    passed integer DEFAULT 0 NOT NULL,
    failed integer DEFAULT 0 NOT NULL,
    claimed_by text,
    heartbeat_until timestamp with time zone NOT NULL,
    started_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    finished_at timestamp with time zone,
    CONSTRAINT test_runs_mode_check CHECK ((mode = ANY (ARRAY['mock'::text, 'live'::text]))),
    CONSTRAINT test_runs_status_check CHECK ((status = ANY (ARRAY['running'::text, 'passed'::text, 'failed'::text, 'error'::text])))
);

CREATE TABLE maas.threads (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    title text,
    closed_at timestamp with time zone,
    archived_upto bigint DEFAULT 0 NOT NULL,
    last_message_at timestamp with time zone DEFAULT now() NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    consolidated_upto bigint DEFAULT 0 NOT NULL
);

CREATE TABLE maas.users (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    api_key_hash text NOT NULL,
    key_prefix text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone,
    llm_mode text,
    CONSTRAINT users_llm_mode_check CHECK ((llm_mode = 'offline'::text)),
    CONSTRAINT users_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)))
);

ALTER TABLE ONLY maas.archive_jobs
    ADD CONSTRAINT archive_jobs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY maas.archive_jobs
    ADD CONSTRAINT archive_jobs_thread_upto_scope_key UNIQUE (thread_id, upto_message_id, scope);

ALTER TABLE ONLY maas.claim_turns
    ADD CONSTRAINT claim_turns_pkey PRIMARY KEY (queue, user_id);

ALTER TABLE ONLY maas.llm_calls
    ADD CONSTRAINT llm_calls_pkey PRIMARY KEY (id);

ALTER TABLE ONLY maas.memories
    ADD CONSTRAINT memories_pkey PRIMARY KEY (id);

ALTER TABLE ONLY maas.memories
    ADD CONSTRAINT memories_user_id_fact_key_key UNIQUE (user_id, fact_key);

ALTER TABLE ONLY maas.memory_sources
    ADD CONSTRAINT memory_sources_pkey PRIMARY KEY (message_id, memory_id);

ALTER TABLE ONLY maas.memory_stats
    ADD CONSTRAINT memory_stats_pkey PRIMARY KEY (user_id);

ALTER TABLE ONLY maas.memory_terms
    ADD CONSTRAINT memory_terms_pkey PRIMARY KEY (user_id, lexeme, memory_id) INCLUDE (tf, doclen, valid, context);

ALTER TABLE ONLY maas.messages
    ADD CONSTRAINT messages_pkey PRIMARY KEY (id);

ALTER TABLE ONLY maas.pipeline_runs
    ADD CONSTRAINT pipeline_runs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY maas.pipeline_runs
    ADD CONSTRAINT pipeline_runs_user_id_idempotency_key_key UNIQUE (user_id, idempotency_key);

ALTER TABLE ONLY maas.run_events
    ADD CONSTRAINT run_events_pkey PRIMARY KEY (id);

ALTER TABLE ONLY maas.run_retrievals
    ADD CONSTRAINT run_retrievals_pkey PRIMARY KEY (run_id);

ALTER TABLE ONLY maas.schema_definitions
    ADD CONSTRAINT schema_definitions_pkey PRIMARY KEY (file);

ALTER TABLE ONLY maas.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);

ALTER TABLE ONLY maas.sessions
    ADD CONSTRAINT sessions_pkey PRIMARY KEY (token_hash);

ALTER TABLE ONLY maas.test_run_steps
    ADD CONSTRAINT test_run_steps_pkey PRIMARY KEY (test_run_id, idx);

ALTER TABLE ONLY maas.test_run_users
    ADD CONSTRAINT test_run_users_pkey PRIMARY KEY (test_run_id, name);

ALTER TABLE ONLY maas.test_run_users
    ADD CONSTRAINT test_run_users_user_id_key UNIQUE (user_id);

ALTER TABLE ONLY maas.test_runs
    ADD CONSTRAINT test_runs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY maas.threads
    ADD CONSTRAINT threads_pkey PRIMARY KEY (id);

ALTER TABLE ONLY maas.users
    ADD CONSTRAINT users_api_key_hash_key UNIQUE (api_key_hash);

ALTER TABLE ONLY maas.users
    ADD CONSTRAINT users_pkey PRIMARY KEY (id);

CREATE INDEX archive_jobs_failed_idx ON maas.archive_jobs USING btree (next_attempt_at) WHERE (status = 'failed'::text);

CREATE INDEX archive_jobs_queue_idx ON maas.archive_jobs USING btree (user_id, id) WHERE (status = 'queued'::text);

CREATE INDEX archive_jobs_running_idx ON maas.archive_jobs USING btree (thread_id) WHERE (status = 'running'::text);

CREATE INDEX llm_calls_created_idx ON maas.llm_calls USING btree (created_at);

CREATE INDEX llm_calls_job_idx ON maas.llm_calls USING btree (archive_job_id) WHERE (archive_job_id IS NOT NULL);

CREATE INDEX llm_calls_run_idx ON maas.llm_calls USING btree (run_id);

CREATE INDEX memories_embedding_idx ON maas.memories USING hnsw (embedding public.vector_cosine_ops);

CREATE INDEX memories_search_idx ON maas.memories USING gin (search) WITH (gin_pending_list_limit='256');

CREATE INDEX memories_slot_idx ON maas.memories USING btree (user_id, slot) WHERE (valid_to IS NULL);

CREATE INDEX memories_source_thread_idx ON maas.memories USING btree (source_thread_id) WHERE (source_thread_id IS NOT NULL);

CREATE INDEX memories_superseded_by_idx ON maas.memories USING btree (superseded_by) WHERE (superseded_by IS NOT NULL);

CREATE INDEX memories_trgm_idx ON maas.memories USING gin (text public.gin_trgm_ops) WITH (gin_pending_list_limit='256');

CREATE INDEX memories_user_trgm ON maas.memories USING gist (int8range((uuid_hash(user_id))::bigint, (uuid_hash(user_id))::bigint, '[]'::text), text public.gist_trgm_ops (siglen='256')) WHERE (valid_to IS NULL);

CREATE INDEX memories_user_valid_idx ON maas.memories USING btree (user_id) WHERE (valid_to IS NULL);

CREATE INDEX memory_sources_memory_idx ON maas.memory_sources USING btree (memory_id);

CREATE UNIQUE INDEX messages_one_answer_per_run ON maas.messages USING btree (run_id) WHERE (role = 'assistant'::text);

CREATE INDEX messages_run_idx ON maas.messages USING btree (run_id) WHERE (run_id IS NOT NULL);

CREATE INDEX messages_thread_idx ON maas.messages USING btree (thread_id, id);

CREATE INDEX run_events_run_idx ON maas.run_events USING btree (run_id, id);

CREATE INDEX runs_claim_idx ON maas.pipeline_runs USING btree (status, user_id, created_at) WHERE ((status = ANY (ARRAY['NEW'::maas.run_status, 'ANALYZED'::maas.run_status, 'READY'::maas.run_status])) AND (stop_at <> status));

CREATE INDEX runs_finished_idx ON maas.pipeline_runs USING btree (created_at) WHERE ((status = ANY (ARRAY['COMPLETED'::maas.run_status, 'FAILED'::maas.run_status])) OR (status = stop_at));

CREATE INDEX runs_lease_idx ON maas.pipeline_runs USING btree (claimed_until) WHERE (status = ANY (ARRAY['ANALYZING'::maas.run_status, 'ASSEMBLING'::maas.run_status, 'RESPONDING'::maas.run_status]));

CREATE INDEX runs_message_idx ON maas.pipeline_runs USING btree (message_id) WHERE (message_id IS NOT NULL);

CREATE INDEX runs_thread_idx ON maas.pipeline_runs USING btree (thread_id, created_at);

CREATE INDEX runs_user_idx ON maas.pipeline_runs USING btree (user_id, created_at DESC);

CREATE INDEX sessions_expiry_idx ON maas.sessions USING btree (expires_at);

CREATE INDEX sessions_user_idx ON maas.sessions USING btree (user_id);

CREATE INDEX test_run_steps_run_idx ON maas.test_run_steps USING btree (run_id) WHERE (run_id IS NOT NULL);

CREATE INDEX test_runs_owner_idx ON maas.test_runs USING btree (owner_id, started_at DESC);

CREATE INDEX test_runs_running_idx ON maas.test_runs USING btree (heartbeat_until) WHERE (status = 'running'::text);

CREATE INDEX test_runs_started_idx ON maas.test_runs USING btree (started_at DESC);

CREATE INDEX threads_idle_idx ON maas.threads USING btree (last_message_at) WHERE (closed_at IS NULL);

CREATE INDEX threads_user_idx ON maas.threads USING btree (user_id, created_at DESC);

CREATE TRIGGER archive_jobs_notify AFTER INSERT OR UPDATE OF status ON maas.archive_jobs FOR EACH ROW EXECUTE FUNCTION maas.notify_archive_job();

CREATE TRIGGER memories_sources_delete AFTER DELETE ON maas.memories REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION maas.remove_memory_sources();

CREATE TRIGGER memories_sources_insert AFTER INSERT ON maas.memories REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION maas.add_memory_sources();

CREATE TRIGGER memories_sources_update AFTER UPDATE OF source_message_ids ON maas.memories FOR EACH ROW EXECUTE FUNCTION maas.update_memory_sources();

CREATE TRIGGER memories_speaker BEFORE INSERT OR UPDATE OF source_message_ids ON maas.memories FOR EACH ROW EXECUTE FUNCTION maas.memory_speaker();

CREATE TRIGGER memories_stats_delete AFTER DELETE ON maas.memories REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION maas.remove_memory_stats();

CREATE TRIGGER memories_stats_insert AFTER INSERT ON maas.memories REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION maas.add_memory_stats();

CREATE TRIGGER memories_stats_update AFTER UPDATE OF valid_to, text ON maas.memories FOR EACH ROW EXECUTE FUNCTION maas.track_memory_stats();

CREATE TRIGGER memories_terms_delete AFTER DELETE ON maas.memories REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION maas.remove_memory_terms();

CREATE TRIGGER memories_terms_insert AFTER INSERT ON maas.memories REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION maas.add_memory_terms();

CREATE TRIGGER memories_terms_update AFTER UPDATE OF valid_to, text, context_search ON maas.memories FOR EACH ROW EXECUTE FUNCTION maas.update_memory_terms();

CREATE TRIGGER runs_notify AFTER INSERT OR UPDATE OF status ON maas.pipeline_runs FOR EACH ROW EXECUTE FUNCTION maas.notify_run_status();

CREATE TRIGGER runs_stamp BEFORE INSERT OR UPDATE OF status ON maas.pipeline_runs FOR EACH ROW EXECUTE FUNCTION maas.stamp_run_status();

CREATE CONSTRAINT TRIGGER runs_turn_archive AFTER UPDATE OF status ON maas.pipeline_runs DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (((new.status = 'COMPLETED'::maas.run_status) AND (old.status <> 'COMPLETED'::maas.run_status) AND (new.stop_at = 'COMPLETED'::maas.run_status) AND (new.thread_id IS NOT NULL))) EXECUTE FUNCTION maas.queue_turn_archive();

CREATE TRIGGER test_run_users_drop AFTER DELETE ON maas.test_run_users FOR EACH ROW EXECUTE FUNCTION maas.drop_test_run_user();

ALTER TABLE ONLY maas.archive_jobs
    ADD CONSTRAINT archive_jobs_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES maas.threads(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.archive_jobs
    ADD CONSTRAINT archive_jobs_user_id_fkey FOREIGN KEY (user_id) REFERENCES maas.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.claim_turns
    ADD CONSTRAINT claim_turns_user_id_fkey FOREIGN KEY (user_id) REFERENCES maas.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.llm_calls
    ADD CONSTRAINT llm_calls_job_fk FOREIGN KEY (archive_job_id) REFERENCES maas.archive_jobs(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.llm_calls
    ADD CONSTRAINT llm_calls_run_id_fkey FOREIGN KEY (run_id) REFERENCES maas.pipeline_runs(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.llm_calls
    ADD CONSTRAINT llm_calls_user_id_fkey FOREIGN KEY (user_id) REFERENCES maas.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.memories
    ADD CONSTRAINT memories_source_thread_id_fkey FOREIGN KEY (source_thread_id) REFERENCES maas.threads(id) ON DELETE SET NULL;

ALTER TABLE ONLY maas.memories
    ADD CONSTRAINT memories_superseded_by_fkey FOREIGN KEY (superseded_by) REFERENCES maas.memories(id) ON DELETE SET NULL;

ALTER TABLE ONLY maas.memories
    ADD CONSTRAINT memories_user_id_fkey FOREIGN KEY (user_id) REFERENCES maas.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.messages
    ADD CONSTRAINT messages_run_fk FOREIGN KEY (run_id) REFERENCES maas.pipeline_runs(id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;

ALTER TABLE ONLY maas.messages
    ADD CONSTRAINT messages_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES maas.threads(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.messages
    ADD CONSTRAINT messages_user_id_fkey FOREIGN KEY (user_id) REFERENCES maas.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.pipeline_runs
    ADD CONSTRAINT pipeline_runs_message_id_fkey FOREIGN KEY (message_id) REFERENCES maas.messages(id) ON DELETE SET NULL;

ALTER TABLE ONLY maas.pipeline_runs
    ADD CONSTRAINT pipeline_runs_thread_id_fkey FOREIGN KEY (thread_id) REFERENCES maas.threads(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.pipeline_runs
    ADD CONSTRAINT pipeline_runs_user_id_fkey FOREIGN KEY (user_id) REFERENCES maas.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.run_events
    ADD CONSTRAINT run_events_run_id_fkey FOREIGN KEY (run_id) REFERENCES maas.pipeline_runs(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.run_retrievals
    ADD CONSTRAINT run_retrievals_run_id_fkey FOREIGN KEY (run_id) REFERENCES maas.pipeline_runs(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.sessions
    ADD CONSTRAINT sessions_user_id_fkey FOREIGN KEY (user_id) REFERENCES maas.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.test_run_steps
    ADD CONSTRAINT test_run_steps_run_id_fkey FOREIGN KEY (run_id) REFERENCES maas.pipeline_runs(id) ON DELETE SET NULL;

ALTER TABLE ONLY maas.test_run_steps
    ADD CONSTRAINT test_run_steps_test_run_id_fkey FOREIGN KEY (test_run_id) REFERENCES maas.test_runs(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.test_run_users
    ADD CONSTRAINT test_run_users_test_run_id_fkey FOREIGN KEY (test_run_id) REFERENCES maas.test_runs(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.test_run_users
    ADD CONSTRAINT test_run_users_user_id_fkey FOREIGN KEY (user_id) REFERENCES maas.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.test_runs
    ADD CONSTRAINT test_runs_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES maas.users(id) ON DELETE CASCADE;

ALTER TABLE ONLY maas.threads
    ADD CONSTRAINT threads_user_id_fkey FOREIGN KEY (user_id) REFERENCES maas.users(id) ON DELETE CASCADE;
