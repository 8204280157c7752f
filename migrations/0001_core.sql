-- MaaS core schema: users, threads, messages, pipeline runs, memories, LLM call log, archive jobs.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TYPE maas.run_status AS ENUM
  ('NEW', 'ANALYZING', 'ANALYZED', 'ASSEMBLING', 'READY', 'RESPONDING', 'COMPLETED', 'FAILED');

CREATE TABLE maas.users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  api_key_hash text NOT NULL UNIQUE,          -- sha256 hex of the key; the key itself is never stored
  key_prefix text NOT NULL,                   -- first characters, to recognise a key in the UI
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE maas.threads (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES maas.users (id) ON DELETE CASCADE,
  title text,
  closed_at timestamptz,
  archived_upto bigint NOT NULL DEFAULT 0,    -- last message id the archivist has turned into memories
  last_message_at timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX threads_user_idx ON maas.threads (user_id, created_at DESC);
CREATE INDEX threads_idle_idx ON maas.threads (last_message_at) WHERE closed_at IS NULL;

CREATE TABLE maas.messages (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  thread_id uuid NOT NULL REFERENCES maas.threads (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES maas.users (id) ON DELETE CASCADE,
  run_id uuid,                                -- the run that produced (assistant) or started (user) it
  role text NOT NULL CHECK (role IN ('user', 'assistant', 'other')),
  speaker text,
  content text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_thread_idx ON maas.messages (thread_id, id);
-- One answer per run, whatever crashes and retries happen.
CREATE UNIQUE INDEX messages_one_answer_per_run ON maas.messages (run_id) WHERE role = 'assistant';

CREATE TABLE maas.pipeline_runs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES maas.users (id) ON DELETE CASCADE,
  thread_id uuid REFERENCES maas.threads (id) ON DELETE CASCADE,
  message_id bigint REFERENCES maas.messages (id) ON DELETE SET NULL,
  query text NOT NULL,
  status maas.run_status NOT NULL DEFAULT 'NEW',
  stop_at maas.run_status NOT NULL DEFAULT 'COMPLETED' CHECK (stop_at IN ('READY', 'COMPLETED')),
  mode text NOT NULL,                         -- 'offline' or 'llm'
  client_type text NOT NULL DEFAULT 'client',
  idempotency_key text,
  max_tokens integer,
  attempts integer NOT NULL DEFAULT 0,        -- attempts at the current stage
  lease_token uuid,
  claimed_by text,
  claimed_until timestamptz,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  param_version text,
  params jsonb,
  analyzer_output jsonb,
  context_text text,
  context_tokens integer,
  answer text,
  error text,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  analyzing_at timestamptz,
  analyzed_at timestamptz,
  assembling_at timestamptz,
  ready_at timestamptz,
  responding_at timestamptz,
  completed_at timestamptz,
  failed_at timestamptz,
  UNIQUE (user_id, idempotency_key)
);
ALTER TABLE maas.messages
  ADD CONSTRAINT messages_run_fk FOREIGN KEY (run_id) REFERENCES maas.pipeline_runs (id)
  ON DELETE SET NULL;
-- The claim queue: runs waiting at a status, oldest first.
CREATE INDEX runs_claim_idx ON maas.pipeline_runs (status, next_attempt_at, created_at)
  WHERE status IN ('NEW', 'ANALYZED', 'READY');
CREATE INDEX runs_lease_idx ON maas.pipeline_runs (claimed_until)
  WHERE status IN ('ANALYZING', 'ASSEMBLING', 'RESPONDING');
CREATE INDEX runs_thread_idx ON maas.pipeline_runs (thread_id, created_at);
CREATE INDEX runs_user_idx ON maas.pipeline_runs (user_id, created_at DESC);
CREATE INDEX runs_finished_idx ON maas.pipeline_runs (created_at)
  WHERE status IN ('COMPLETED', 'FAILED');

-- Every status change, including retries, in order: the run's history and the SSE feed.
CREATE TABLE maas.run_events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id uuid NOT NULL REFERENCES maas.pipeline_runs (id) ON DELETE CASCADE,
  status maas.run_status NOT NULL,
  attempt integer NOT NULL,
  error text,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX run_events_run_idx ON maas.run_events (run_id, id);

CREATE TABLE maas.memories (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id uuid NOT NULL REFERENCES maas.users (id) ON DELETE CASCADE,
  text text NOT NULL,
  kind text NOT NULL DEFAULT 'fact',
  slot text,                                  -- what the fact is about, to detect a changed fact
  fact_key text NOT NULL,                     -- md5 of the normalised text: one memory per fact
  search tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
  embedding vector(384),
  importance real NOT NULL DEFAULT 0.5 CHECK (importance BETWEEN 0 AND 1),
  event_time timestamptz,
  valid_from timestamptz NOT NULL DEFAULT now(),
  valid_to timestamptz,
  superseded_by bigint REFERENCES maas.memories (id) ON DELETE SET NULL,
  source_message_ids bigint[] NOT NULL DEFAULT '{}',
  source_thread_id uuid REFERENCES maas.threads (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, fact_key)
);
CREATE INDEX memories_user_valid_idx ON maas.memories (user_id) WHERE valid_to IS NULL;
CREATE INDEX memories_search_idx ON maas.memories USING gin (search);
CREATE INDEX memories_trgm_idx ON maas.memories USING gin (text gin_trgm_ops);
CREATE INDEX memories_embedding_idx ON maas.memories USING hnsw (embedding vector_cosine_ops);
CREATE INDEX memories_slot_idx ON maas.memories (user_id, slot) WHERE valid_to IS NULL;

CREATE TABLE maas.run_memories (
  run_id uuid NOT NULL REFERENCES maas.pipeline_runs (id) ON DELETE CASCADE,
  memory_id bigint NOT NULL REFERENCES maas.memories (id) ON DELETE CASCADE,
  rank integer NOT NULL,
  score real NOT NULL,
  components jsonb NOT NULL DEFAULT '{}',
  used boolean NOT NULL,
  tokens integer NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, memory_id)
);
CREATE INDEX run_memories_memory_idx ON maas.run_memories (memory_id);

CREATE TABLE maas.llm_calls (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id uuid REFERENCES maas.pipeline_runs (id) ON DELETE CASCADE,
  archive_job_id bigint,
  user_id uuid REFERENCES maas.users (id) ON DELETE CASCADE,
  stage text NOT NULL,
  model text NOT NULL,
  prompt_tokens integer NOT NULL DEFAULT 0,
  completion_tokens integer NOT NULL DEFAULT 0,
  ms real NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('ok', 'error', 'invalid', 'timeout')),
  error text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_calls_run_idx ON maas.llm_calls (run_id);
CREATE INDEX llm_calls_created_idx ON maas.llm_calls (created_at);

CREATE TABLE maas.archive_jobs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  thread_id uuid NOT NULL REFERENCES maas.threads (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES maas.users (id) ON DELETE CASCADE,
  upto_message_id bigint NOT NULL,
  reason text NOT NULL CHECK (reason IN ('closed', 'idle', 'import')),
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  lease_token uuid,
  claimed_by text,
  claimed_until timestamptz,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  memories_created integer NOT NULL DEFAULT 0,
  error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  UNIQUE (thread_id, upto_message_id)
);
CREATE INDEX archive_jobs_claim_idx ON maas.archive_jobs (next_attempt_at) WHERE status = 'queued';
ALTER TABLE maas.llm_calls
  ADD CONSTRAINT llm_calls_job_fk FOREIGN KEY (archive_job_id) REFERENCES maas.archive_jobs (id)
  ON DELETE CASCADE;

-- Stamp the per-stage timestamp of every status a run enters.
CREATE FUNCTION maas.stamp_run_status() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER runs_stamp BEFORE INSERT OR UPDATE OF status ON maas.pipeline_runs
  FOR EACH ROW EXECUTE FUNCTION maas.stamp_run_status();

-- Record the change and ring the doorbell: the payload is "<status>:<run id>", ids only.
CREATE FUNCTION maas.notify_run_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.status = OLD.status THEN
    RETURN NULL;
  END IF;
  INSERT INTO maas.run_events (run_id, status, attempt, error)
    VALUES (NEW.id, NEW.status, NEW.attempts,
            CASE WHEN NEW.status IN ('FAILED', 'NEW', 'ANALYZED', 'READY') THEN NEW.error END);
  PERFORM pg_notify('maas_runs', NEW.status::text || ':' || NEW.id::text);
  RETURN NULL;
END $$;
CREATE TRIGGER runs_notify AFTER INSERT OR UPDATE OF status ON maas.pipeline_runs
  FOR EACH ROW EXECUTE FUNCTION maas.notify_run_status();

CREATE FUNCTION maas.notify_archive_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('maas_archive', NEW.status || ':' || NEW.id::text);
  RETURN NULL;
END $$;
CREATE TRIGGER archive_jobs_notify AFTER INSERT OR UPDATE OF status ON maas.archive_jobs
  FOR EACH ROW EXECUTE FUNCTION maas.notify_archive_job();
