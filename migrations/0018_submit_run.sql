-- A chat message and its run in one statement (one round trip instead of eight).
--
-- The submit was a transaction of up to eight statements: BEGIN, the thread (insert, or check
-- the owner and reopen), the message, the run, the message's link to its run, the express
-- lane's claim, COMMIT. Each is a round trip plus asyncpg's encoding and decoding, about a tenth
-- of the service's CPU per chat. The same statements, in the same order and with the same
-- guards, now run inside this function; the triggers (status stamp, run event, NOTIFY) fire as
-- before. Errors: SQLSTATE MA404 for a thread the user does not own, MA409 when another run
-- already holds the idempotency key (the whole statement is rolled back: no message is left).
--
-- p_run is the new run's id, chosen by the caller (uuid4), so that it can tell its own
-- listener to ignore the run's queue notifications before they can arrive (express lane).
-- p_lease_s not null: the express lane claims the run for the analyzer in the same commit,
-- under that lease for worker p_worker (not when an earlier run of its thread is unfinished,
-- as claim_run), and the commit does not wait for the WAL flush: the express lane answers only
-- after the run's last commit, which is synchronous and flushes this one (WAL is flushed in
-- order); a crash before that loses a request nobody was answered for.
CREATE FUNCTION maas.submit_run(
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

  IF p_lease_s IS NOT NULL THEN
    UPDATE maas.pipeline_runs r
    SET status = 'ANALYZING', attempts = r.attempts + 1, lease_token = gen_random_uuid(),
        claimed_by = p_worker, claimed_until = now() + make_interval(secs => p_lease_s)
    WHERE r.id = submit_run.run_id AND r.status = 'NEW' AND r.stop_at <> r.status
      AND NOT EXISTS (
        SELECT 1 FROM maas.pipeline_runs e
        WHERE e.thread_id = r.thread_id AND e.created_at < r.created_at
          AND e.status NOT IN ('COMPLETED', 'FAILED') AND e.status <> e.stop_at)
    RETURNING r.lease_token INTO lease_token;
    IF lease_token IS NOT NULL THEN
      PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
  END IF;
END $$;
