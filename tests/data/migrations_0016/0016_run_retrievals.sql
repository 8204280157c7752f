-- A run's retrieved memories as one row of parallel arrays instead of one row per memory.
--
-- The assembler recorded every candidate (up to 200 per run) as a row of maas.run_memories, with
-- two foreign-key checks and two index entries each, and the sensor copied them again, row by
-- row, into selflearn.sensor_retrievals: together about half of Postgres's time per chat message
-- (statement log of 100 chats at 10k memories: insert 4.0 ms, sensor capture 5.6 ms per message).
-- One row per run keeps the same facts (rank = position in the arrays) at one index entry.
-- maas.run_memories stays as a view of the old shape, so every reader reads what it read.
-- A deleted memory no longer takes its entries with it: the run did retrieve it, and every reader
-- joins maas.memories, which drops it as before.

CREATE TABLE maas.run_retrievals (
  run_id uuid PRIMARY KEY REFERENCES maas.pipeline_runs (id) ON DELETE CASCADE,
  memory_ids bigint[] NOT NULL,      -- in rank order (rank 1 first)
  scores real[] NOT NULL,
  components jsonb NOT NULL,         -- JSON array: each memory's score components, same order
  used boolean[] NOT NULL,           -- packed into the context
  tokens integer[] NOT NULL,         -- its line's tokens in the context (0: not packed)
  CHECK (cardinality(memory_ids) = cardinality(scores)
         AND cardinality(memory_ids) = cardinality(used)
         AND cardinality(memory_ids) = cardinality(tokens)
         AND jsonb_array_length(components) = cardinality(memory_ids))
);

INSERT INTO maas.run_retrievals (run_id, memory_ids, scores, components, used, tokens)
SELECT run_id, array_agg(memory_id ORDER BY rank), array_agg(score ORDER BY rank),
       jsonb_agg(components ORDER BY rank), array_agg(used ORDER BY rank),
       array_agg(tokens ORDER BY rank)
FROM maas.run_memories GROUP BY run_id;

-- The sensor's copy, also one row per run; `sources` holds each memory's source message ids
-- (a JSON array of arrays, same order as memory_ids).
CREATE TABLE selflearn.sensor_retrievals_1 (
  run_id uuid PRIMARY KEY REFERENCES selflearn.sensor_events (run_id) ON DELETE CASCADE,
  memory_ids bigint[] NOT NULL,
  used boolean[] NOT NULL,
  tokens integer[] NOT NULL,
  sources jsonb NOT NULL
);
INSERT INTO selflearn.sensor_retrievals_1 (run_id, memory_ids, used, tokens, sources)
SELECT run_id, array_agg(memory_id ORDER BY rank), array_agg(used ORDER BY rank),
       array_agg(tokens ORDER BY rank), jsonb_agg(to_jsonb(source_message_ids) ORDER BY rank)
FROM selflearn.sensor_retrievals GROUP BY run_id;
DROP TABLE selflearn.sensor_retrievals;
ALTER TABLE selflearn.sensor_retrievals_1 RENAME TO sensor_retrievals;
ALTER TABLE selflearn.sensor_retrievals RENAME CONSTRAINT sensor_retrievals_1_pkey
  TO sensor_retrievals_pkey;
ALTER TABLE selflearn.sensor_retrievals RENAME CONSTRAINT sensor_retrievals_1_run_id_fkey
  TO sensor_retrievals_run_id_fkey;

-- The old table goes with the three views that read it; they come back below, unchanged
-- except finished_retrievals (one row per run now, as the sensor stores it).
DROP TABLE maas.run_memories CASCADE;

CREATE VIEW maas.run_memories AS
SELECT r.run_id, u.memory_id, u.rank::integer AS rank, u.score,
       r.components -> (u.rank::integer - 1) AS components, u.used, u.tokens
FROM maas.run_retrievals r
CROSS JOIN LATERAL unnest(r.memory_ids, r.scores, r.used, r.tokens)
  WITH ORDINALITY AS u(memory_id, score, used, tokens, rank);

-- The retrieved memories of finished runs with their provenance, one row per run (read-only
-- view of MaaS for the sensor). A memory deleted since has no sources ([]).
CREATE VIEW selflearn.finished_retrievals AS
SELECT r.run_id, r.memory_ids, r.used, r.tokens,
       (SELECT coalesce(jsonb_agg(coalesce(to_jsonb(m.source_message_ids), '[]'::jsonb)
                                  ORDER BY u.i), '[]'::jsonb)
        FROM unnest(r.memory_ids) WITH ORDINALITY AS u(id, i)
        LEFT JOIN LATERAL (SELECT x.source_message_ids FROM maas.memories x
                           WHERE x.id = u.id OFFSET 0) m ON true) AS sources
FROM maas.run_retrievals r;

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

-- As in migration 0008; memories retrieved and used now counted from the run's one row.
CREATE VIEW selflearn.finished_runs AS
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
