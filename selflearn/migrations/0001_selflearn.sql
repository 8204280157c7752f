-- Self-learning (#6): the sensor's one row per finished run, the emulator's runs and what it
-- expects from its probing questions. Schema selflearn belongs to the selflearn package; maas never
-- reads it. No foreign key points at runs, threads or messages, so this history outlives MaaS
-- retention and purges; the only one points at maas.users with ON DELETE CASCADE, so erasing a
-- user (DELETE /v1/users/me, the admin delete) erases the user's rows here too.
CREATE SCHEMA IF NOT EXISTS selflearn;

CREATE TABLE selflearn.sensor_events (
  run_id uuid PRIMARY KEY,                    -- maas.pipeline_runs.id: exactly one row per run
  user_id uuid NOT NULL REFERENCES maas.users (id) ON DELETE CASCADE,
  thread_id uuid,
  client_type text NOT NULL,                  -- client (real), emulator, test-runner, bench
  mode text NOT NULL,                         -- offline or llm
  param_version text,
  experiment_arm text,                        -- set by the tuner's experiments (#7); null until then
  status text NOT NULL,                       -- COMPLETED, FAILED, or READY for a /v1/context run
  stop_at text NOT NULL,
  error_class text,                           -- selflearn.error_class(error) of a FAILED run
  failed_stage text,                          -- the stage a FAILED run last entered
  started_at timestamptz NOT NULL,            -- created_at of the run
  finished_at timestamptz NOT NULL,           -- completed_at, failed_at or (context) ready_at
  latency_ms double precision NOT NULL,
  queue_ms double precision,
  analyzer_ms double precision,
  assembler_ms double precision,
  responder_ms double precision,
  prompt_tokens integer NOT NULL,
  completion_tokens integer NOT NULL,
  llm_calls integer NOT NULL,
  memories_retrieved integer NOT NULL,
  memories_used integer NOT NULL,
  found_anything boolean NOT NULL,
  context_tokens integer,
  recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX sensor_events_finished_idx ON selflearn.sensor_events (finished_at);
CREATE INDEX sensor_events_user_idx ON selflearn.sensor_events (user_id);

CREATE TABLE selflearn.emulator_runs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  seed bigint NOT NULL,
  dialogs_requested integer NOT NULL CHECK (dialogs_requested > 0),
  concurrency integer NOT NULL CHECK (concurrency > 0),
  target_url text NOT NULL,
  status text NOT NULL DEFAULT 'running'
    CHECK (status IN ('running', 'completed', 'stopped', 'failed')),
  dialogs integer NOT NULL DEFAULT 0,
  turns integer NOT NULL DEFAULT 0,
  runs integer NOT NULL DEFAULT 0,
  failures integer NOT NULL DEFAULT 0,
  summary jsonb,
  error text,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);

CREATE TABLE selflearn.emulator_expectations (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  emulator_run_id uuid NOT NULL REFERENCES selflearn.emulator_runs (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES maas.users (id) ON DELETE CASCADE,
  run_id uuid NOT NULL UNIQUE,                -- the probing question's maas.pipeline_runs.id
  persona text NOT NULL,
  scenario text NOT NULL,
  ability text NOT NULL
    CHECK (ability IN ('single_fact', 'multi_hop', 'temporal', 'knowledge_update', 'abstention')),
  attempt integer NOT NULL DEFAULT 1,         -- 2, 3 … when the persona asked again
  question text NOT NULL,
  expected_answer text NOT NULL,
  fact_ids text[] NOT NULL,                   -- planted facts the answer depends on (none: abstain)
  planted jsonb NOT NULL,                     -- {fact id: [ids of the messages that stated it]}
  retrieved_fact_ids text[] NOT NULL,         -- planted facts some retrieved memory came from
  recall_hit boolean,                         -- every planted fact retrieved; null for abstention
  answer_hit boolean NOT NULL,                -- expected answer found in the reply
  answer text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX emulator_expectations_run_idx ON selflearn.emulator_expectations (emulator_run_id);
CREATE INDEX emulator_expectations_user_idx ON selflearn.emulator_expectations (user_id);

-- A coarse class of a failed run's error text, for counting failures without parsing text later.
CREATE FUNCTION selflearn.error_class(error text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN error IS NULL THEN NULL
    WHEN error LIKE 'lease expired%' THEN 'lease_expired'
    WHEN error ILIKE '%deadline exceeded%' OR error ILIKE '%timeout%' OR error ILIKE '%timed out%'
      THEN 'timeout'
    WHEN error ~ '^(analyzer|responder|archivist): ' THEN 'llm'
    WHEN error ~ '^[A-Za-z_][A-Za-z0-9_.]*(Error|Exception)\M'
      THEN substring(error FROM '^[A-Za-z_][A-Za-z0-9_.]*')
    ELSE 'stage_error'
  END
$$;

CREATE FUNCTION selflearn.span_ms(a timestamptz, b timestamptz) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$ SELECT round((extract(epoch FROM b - a) * 1000)::numeric, 2)::float8 $$;

-- The sensor's read-only view of MaaS: one row per finished run (COMPLETED, FAILED, or a
-- /v1/context run that stopped at READY) with the fields of selflearn.sensor_events, in its order.
-- Stage spans as in METRICS.md section 1; tokens from maas.llm_calls, memories from run_memories.
CREATE VIEW selflearn.finished_runs AS
SELECT r.id AS run_id, r.user_id, r.thread_id, r.client_type, r.mode, r.param_version,
       NULL::text AS experiment_arm,
       r.status::text AS status, r.stop_at::text AS stop_at,
       CASE WHEN r.status = 'FAILED' THEN selflearn.error_class(r.error) END AS error_class,
       CASE WHEN r.status <> 'FAILED' THEN NULL
            WHEN r.responding_at IS NOT NULL THEN 'responder'
            WHEN r.assembling_at IS NOT NULL THEN 'assembler'
            WHEN r.analyzing_at IS NOT NULL THEN 'analyzer'
            ELSE 'queue' END AS failed_stage,
       r.created_at AS started_at,
       e.finished_at,
       selflearn.span_ms(r.created_at, e.finished_at) AS latency_ms,
       selflearn.span_ms(r.created_at, r.analyzing_at) AS queue_ms,
       selflearn.span_ms(r.analyzing_at, r.analyzed_at) AS analyzer_ms,
       selflearn.span_ms(r.assembling_at, r.ready_at) AS assembler_ms,
       selflearn.span_ms(r.responding_at, r.completed_at) AS responder_ms,
       c.prompt_tokens, c.completion_tokens, c.llm_calls,
       m.retrieved AS memories_retrieved, m.used AS memories_used,
       m.retrieved > 0 AS found_anything,
       r.context_tokens
FROM maas.pipeline_runs r
CROSS JOIN LATERAL (
  SELECT CASE r.status WHEN 'COMPLETED' THEN r.completed_at WHEN 'FAILED' THEN r.failed_at
                       ELSE r.ready_at END AS finished_at
) e
CROSS JOIN LATERAL (
  SELECT coalesce(sum(x.prompt_tokens), 0)::int AS prompt_tokens,
         coalesce(sum(x.completion_tokens), 0)::int AS completion_tokens,
         count(*)::int AS llm_calls
  FROM maas.llm_calls x WHERE x.run_id = r.id
) c
CROSS JOIN LATERAL (
  SELECT count(*)::int AS retrieved, (count(*) FILTER (WHERE x.used))::int AS used
  FROM maas.run_memories x WHERE x.run_id = r.id
) m
WHERE r.status IN ('COMPLETED', 'FAILED') OR (r.status = 'READY' AND r.stop_at = 'READY');
