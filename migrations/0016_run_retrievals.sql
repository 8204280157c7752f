-- A run's retrieved memories as one row of parallel arrays instead of one row per memory.
--
-- The assembler recorded every candidate (up to 200 per run) as a row of maas.run_memories, with
-- two foreign-key checks and two index entries each, and the sensor copied them again, row by
-- row, into selflearn.sensor_retrievals: together about half of Postgres's time per chat message
-- (statement log of 100 chats at 10k memories: insert 4.0 ms, sensor capture 5.6 ms per message).
-- One row per run keeps the same facts (rank = position in the arrays) at one index entry.
-- maas.run_memories stays as a view of the old shape, so every reader reads what it read.
-- (Split in two when self-learning got its own migrations: the sensor's half is
-- selflearn/migrations/0005_run_retrievals.sql; databases that ran the whole file keep its
-- checksum, accepted by maas/db/migrate.py.)
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

-- The old table goes with the views that read it (self-learning's, when it is there: its own
-- migration and definitions bring them back).
DROP TABLE maas.run_memories CASCADE;

CREATE VIEW maas.run_memories AS
SELECT r.run_id, u.memory_id, u.rank::integer AS rank, u.score,
       r.components -> (u.rank::integer - 1) AS components, u.used, u.tokens
FROM maas.run_retrievals r
CROSS JOIN LATERAL unnest(r.memory_ids, r.scores, r.used, r.tokens)
  WITH ORDINALITY AS u(memory_id, score, used, tokens, rank);
