-- Definitions of self-learning's functions and its read-only views of MaaS: the one current text
-- of each, applied after its migrations (selflearn/migrations, ledger selflearn.schema_*) whenever
-- this file changes.


-- A coarse class of a failed run's error text, for counting failures without parsing text later.
CREATE OR REPLACE FUNCTION selflearn.error_class(error text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
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

CREATE OR REPLACE FUNCTION selflearn.span_ms(a timestamptz, b timestamptz) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$ SELECT round((extract(epoch FROM b - a) * 1000)::numeric, 2)::float8 $$;

CREATE OR REPLACE FUNCTION selflearn.freeze_spec() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.spec IS DISTINCT FROM OLD.spec OR NEW.spec_hash IS DISTINCT FROM OLD.spec_hash THEN
    RAISE EXCEPTION 'experiment % spec is frozen once started', OLD.id;
  END IF;
  RETURN NEW;
END $$;

-- As in migration 0008; memories retrieved and used now counted from the run's one row.
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
  SELECT coalesce(max(cardinality(x.memory_ids)), 0)::int AS retrieved,
         coalesce(max(cardinality(array_positions(x.used, true))), 0)::int AS used
  FROM maas.run_retrievals x WHERE x.run_id = r.id
) m
WHERE r.status IN ('COMPLETED', 'FAILED') OR (r.status = 'READY' AND r.stop_at = 'READY');


-- The retrieved memories of finished runs with their provenance, one row per run (read-only
-- view of MaaS for the sensor). A memory deleted since has no sources ([]).
CREATE OR REPLACE VIEW selflearn.finished_retrievals AS
SELECT r.run_id, r.memory_ids, r.used, r.tokens,
       (SELECT coalesce(jsonb_agg(coalesce(to_jsonb(m.source_message_ids), '[]'::jsonb)
                                  ORDER BY u.i), '[]'::jsonb)
        FROM unnest(r.memory_ids) WITH ORDINALITY AS u(id, i)
        LEFT JOIN LATERAL (SELECT x.source_message_ids FROM maas.memories x
                           WHERE x.id = u.id OFFSET 0) m ON true) AS sources
FROM maas.run_retrievals r;


-- What the judge reads of a completed run: the question, the answer, the memories it was given.
CREATE OR REPLACE VIEW selflearn.judge_inputs AS
SELECT r.id AS run_id, r.user_id, r.query, coalesce(r.answer, '') AS answer,
       coalesce(r.context_text, '') AS context_text,
       coalesce((SELECT jsonb_agg(jsonb_build_object('memory_id', m.id, 'text', m.text)
                                  ORDER BY rm.rank)
                 FROM maas.run_memories rm JOIN maas.memories m ON m.id = rm.memory_id
                 WHERE rm.run_id = r.id AND rm.used), '[]'::jsonb) AS used_memories
FROM maas.pipeline_runs r
WHERE r.status = 'COMPLETED';
