-- maas.submit_run (migration 0018) claims through maas.claim_stage (migration 0019) instead of a
-- copy of its UPDATE: one express-lane claim, one thread-order rule. Same signature and result.
CREATE OR REPLACE FUNCTION maas.submit_run(
  p_run uuid, p_user uuid, p_thread uuid, p_title text, p_query text, p_mode text, p_stop_at text,
  p_client_type text, p_idempotency_key text, p_max_tokens integer,
  p_lease_s float8, p_worker text,
  OUT run_id uuid, OUT thread_id uuid, OUT message_id bigint, OUT mode text,
  OUT lease_token uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
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
    INSERT INTO maas.messages (thread_id, user_id, role, speaker, content, created_at)
    VALUES (thread_id, p_user, 'user', NULL, p_query, now()) RETURNING id INTO message_id;
  END IF;

  INSERT INTO maas.pipeline_runs
    (id, user_id, thread_id, message_id, query, mode, stop_at, client_type, idempotency_key,
     max_tokens)
  VALUES (p_run, p_user, thread_id, message_id, p_query,
          coalesce((SELECT u.llm_mode FROM maas.users u WHERE u.id = p_user), p_mode),
          p_stop_at::maas.run_status, p_client_type, p_idempotency_key, p_max_tokens)
  ON CONFLICT (user_id, idempotency_key) DO NOTHING
  RETURNING id, mode INTO run_id, mode;
  IF run_id IS NULL THEN
    RAISE EXCEPTION 'idempotency key taken' USING ERRCODE = 'MA409';
  END IF;
  IF message_id IS NOT NULL THEN
    UPDATE maas.messages m SET run_id = submit_run.run_id WHERE m.id = message_id;
  END IF;

  -- the express lane's claim, with the stage commits' own rule (migration 0019)
  SELECT c.lease_token INTO lease_token
  FROM maas.claim_stage(submit_run.run_id, 'NEW', 'ANALYZING', p_lease_s, p_worker) c;
END $$;
