-- Self-learning II (#7): the Teacher's experiments, judgements and verdicts; the Tuner's versioned
-- parameters and audit log; the sensor also keeps each run's retrieved memories (provenance), so
-- retrieval precision/recall against planted facts come from sensor tables only.

-- Each retrieved memory of a recorded run, with its provenance. Captured with the run's event.
CREATE TABLE selflearn.sensor_retrievals (
  run_id uuid NOT NULL REFERENCES selflearn.sensor_events (run_id) ON DELETE CASCADE,
  memory_id bigint NOT NULL,
  rank integer NOT NULL,
  used boolean NOT NULL,
  tokens integer NOT NULL,
  source_message_ids bigint[] NOT NULL,
  PRIMARY KEY (run_id, memory_id)
);

-- The retrieved memories of finished runs (read-only view of MaaS, like finished_runs).
CREATE VIEW selflearn.finished_retrievals AS
SELECT rm.run_id, rm.memory_id, rm.rank, rm.used, rm.tokens, m.source_message_ids
FROM maas.run_memories rm JOIN maas.memories m ON m.id = rm.memory_id;

CREATE TABLE selflearn.experiments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  spec jsonb NOT NULL,                        -- frozen at start (trigger below)
  spec_hash text NOT NULL,                    -- sha256 of the canonical JSON of the spec
  mode text NOT NULL CHECK (mode IN ('paired', 'split')),
  status text NOT NULL DEFAULT 'running'
    CHECK (status IN ('running', 'done', 'failed', 'stopped')),
  -- paired: the arm whose parameters new runs get while the experiment runs (null between arms)
  live_arm text CHECK (live_arm IN ('baseline', 'variant')),
  baseline_emulator_run uuid REFERENCES selflearn.emulator_runs (id) ON DELETE SET NULL,
  variant_emulator_run uuid REFERENCES selflearn.emulator_runs (id) ON DELETE SET NULL,
  error text,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);
-- One experiment steers the parameters at a time.
CREATE UNIQUE INDEX experiments_one_running ON selflearn.experiments ((true))
  WHERE status = 'running';

CREATE FUNCTION selflearn.freeze_spec() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.spec IS DISTINCT FROM OLD.spec OR NEW.spec_hash IS DISTINCT FROM OLD.spec_hash THEN
    RAISE EXCEPTION 'experiment % spec is frozen once started', OLD.id;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER experiments_freeze_spec BEFORE UPDATE ON selflearn.experiments
  FOR EACH ROW EXECUTE FUNCTION selflearn.freeze_spec();

CREATE TABLE selflearn.experiment_parameters (
  version integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  label text GENERATED ALWAYS AS ('tuner-' || version::text) STORED UNIQUE,  -- = param_version
  params jsonb NOT NULL,                      -- the full set, every parameter, guarded
  active boolean NOT NULL DEFAULT false,
  parent integer REFERENCES selflearn.experiment_parameters (version),
  reason text NOT NULL,
  created_by text NOT NULL CHECK (created_by IN ('teacher', 'manager', 'person')),
  experiment_id uuid REFERENCES selflearn.experiments (id) ON DELETE SET NULL,
  arm text CHECK (arm IN ('baseline', 'variant')),
  activated_at timestamptz,                   -- last time it became the active version
  rolled_back_at timestamptz,                 -- rolled back from: never "last good" again
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE UNIQUE INDEX experiment_parameters_one_active ON selflearn.experiment_parameters ((true))
  WHERE active;

CREATE TABLE selflearn.parameter_audit (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT clock_timestamp(),
  action text NOT NULL CHECK (action IN ('store', 'prepare', 'activate', 'deactivate', 'rollback',
    'guardrail_breach', 'auto_rollback', 'experiment_arm', 'experiment_end')),
  actor text NOT NULL CHECK (actor IN ('teacher', 'manager', 'person')),
  who text NOT NULL,                          -- a person's name, 'admin api', a monitor …
  reason text NOT NULL,
  experiment_id uuid REFERENCES selflearn.experiments (id) ON DELETE SET NULL,
  version integer REFERENCES selflearn.experiment_parameters (version),
  previous_version integer REFERENCES selflearn.experiment_parameters (version),
  diff jsonb NOT NULL DEFAULT '{}',           -- {parameter: [before, after]}
  details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX parameter_audit_experiment_idx ON selflearn.parameter_audit (experiment_id);

-- A judge's score of one aspect of a run; the judge's version is kept with every score.
CREATE TABLE selflearn.judgements (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id uuid NOT NULL,
  user_id uuid NOT NULL REFERENCES maas.users (id) ON DELETE CASCADE,
  experiment_id uuid REFERENCES selflearn.experiments (id) ON DELETE CASCADE,
  judge_version text NOT NULL,                -- e.g. heuristic-lexical/1, llm:<model>/judge-v1
  aspect text NOT NULL CHECK (aspect IN ('hallucination', 'uses_memory', 'relevance')),
  memory_id bigint,                           -- uses_memory / relevance: the memory judged
  score double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
  swapped boolean NOT NULL DEFAULT false,     -- the context was shown in reverse order
  repeat integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX judgements_run_idx ON selflearn.judgements (run_id);
CREATE INDEX judgements_experiment_idx ON selflearn.judgements (experiment_id);

CREATE TABLE selflearn.verdicts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  experiment_id uuid NOT NULL REFERENCES selflearn.experiments (id) ON DELETE CASCADE,
  spec_hash text NOT NULL,
  verdict text NOT NULL CHECK (verdict IN ('INVALID', 'ROLLBACK', 'SHIP', 'HOLD')),
  reasons text[] NOT NULL,
  recommendations text[] NOT NULL,
  metrics jsonb NOT NULL,                     -- {metric: {baseline, variant, delta, ci, p_value …}}
  checks jsonb NOT NULL,                      -- samples, SRM, judge consistency
  judge_version text,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX verdicts_experiment_idx ON selflearn.verdicts (experiment_id);

-- What the judge reads of a completed run: the question, the answer, the memories it was given.
CREATE VIEW selflearn.judge_inputs AS
SELECT r.id AS run_id, r.user_id, r.query, coalesce(r.answer, '') AS answer,
       coalesce(r.context_text, '') AS context_text,
       coalesce((SELECT jsonb_agg(jsonb_build_object('memory_id', m.id, 'text', m.text)
                                  ORDER BY rm.rank)
                 FROM maas.run_memories rm JOIN maas.memories m ON m.id = rm.memory_id
                 WHERE rm.run_id = r.id AND rm.used), '[]'::jsonb) AS used_memories
FROM maas.pipeline_runs r
WHERE r.status = 'COMPLETED';

-- The sensor's view now names the experiment arm of the parameter version a run used (versions
-- made by prepare_experiment carry their experiment and arm; every other run: null).
CREATE OR REPLACE VIEW selflearn.finished_runs AS
SELECT r.id AS run_id, r.user_id, r.thread_id, r.client_type, r.mode, r.param_version,
       (SELECT p.arm FROM selflearn.experiment_parameters p WHERE p.label = r.param_version)
         AS experiment_arm,
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
