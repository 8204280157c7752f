-- Fair claiming across users (issue 20).
--
-- claim_run took the oldest claimable run of everyone: one global FIFO, so a tenant that queued
-- 1,000 runs delayed every other tenant's run by all of them (0.23 s -> 25 s). Now each queue
-- serves its users in turn: the next claim takes the oldest claimable run of the user served
-- least recently at that queue. maas.claim_turns keeps, per queue and user, when that user was
-- last served (a number from maas.claim_turn_seq, which only grows); a user never served there
-- counts as served at 0, first in line.
--
-- The bound: once a run is its user's oldest claimable run at a queue, every other user with
-- claimable runs there is served at most once before it, so at most U - 1 claims that start
-- after it became claimable go to other users' runs (U = users with claimable runs at that queue),
-- beside the claims already under way at that moment (at most one per concurrent claimer).
-- Candidates are ordered by their place in their user's queue first (every user's first
-- claimable run before anyone's second), so a claimer that finds a user's first run locked by
-- another claimer takes another user's first run before that user's second.
--
-- The claim stays index-driven with any backlog: the users waiting at a queue are found by a
-- skip scan of runs_claim_idx (now status, user, age: one index descent per waiting user) and
-- sorted by their turn (one key probe each); then, users in turn, each user's first claimable
-- runs (at most 32 of its queue looked at, 8 kept) until 64 candidates are found. A long queue,
-- or one blocked by the thread-order rule, costs a claim the same few probes (the FIFO claim
-- read the whole queue: 60-160 ms with 25k runs of one user queued, now 0.4-0.9 ms; 200 users
-- with 10 runs each: 3-7 ms before, 2-3 ms now; a near-empty queue: the same ~0.5 ms; a busy
-- shared 2-core machine). A user whose first 32 queued runs all wait for earlier runs of their
-- threads waits until those move (its runs of other threads are not looked at meanwhile).
--
-- The claim is a function so that it runs on a generic plan (its shape does not depend on the
-- queue; with custom plans Postgres planned it on every call, ~1 ms).

CREATE TABLE maas.claim_turns (
  queue text NOT NULL,  -- a queue status (NEW, ANALYZED, READY) or 'archive'
  user_id uuid NOT NULL REFERENCES maas.users (id) ON DELETE CASCADE,
  served bigint NOT NULL,
  PRIMARY KEY (queue, user_id)
);
CREATE SEQUENCE maas.claim_turn_seq;

DROP INDEX maas.runs_claim_idx;
CREATE INDEX runs_claim_idx ON maas.pipeline_runs (status, user_id, created_at)
  WHERE status IN ('NEW', 'ANALYZED', 'READY') AND stop_at <> status;

-- Record that user p_user was just served at queue p_queue; returns the turn's number.
CREATE FUNCTION maas.take_turn(p_queue text, p_user uuid) RETURNS bigint LANGUAGE sql AS $$
  INSERT INTO maas.claim_turns (queue, user_id, served)
  VALUES (p_queue, p_user, nextval('maas.claim_turn_seq'))
  ON CONFLICT (queue, user_id) DO UPDATE SET served = excluded.served
  RETURNING served
$$;

-- Take the next run waiting at p_queue (see above), move it to p_working under a fresh lease of
-- p_lease_s seconds for worker p_worker; no row when nothing is claimable. The claim commits
-- without waiting for its WAL flush (lost in a database crash, it only leaves the run queued; the
-- stage's own commit, synchronous, flushes it anyway).
CREATE FUNCTION maas.claim_run(
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
  ), candidates AS (  -- each user's first claimable runs, users in turn, until 64 are found
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
        -- the thread-order rule: no earlier unfinished run of its thread (runs_thread_idx)
        AND (SELECT true FROM maas.pipeline_runs e
             WHERE e.thread_id = h.thread_id AND e.created_at < h.created_at
               AND e.status NOT IN ('COMPLETED', 'FAILED') AND e.status <> e.stop_at
             LIMIT 1) IS NULL
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
