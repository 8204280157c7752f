-- The sensor's half of MaaS's migration 0016 (run_retrievals: one row per run instead of one per
-- retrieved memory). A database that ran MaaS's 0016 whole has this already (adopted, not run).
--
-- The views over the old shape go (selflearn/functions.sql brings back their current texts).
DROP VIEW IF EXISTS selflearn.finished_retrievals, selflearn.judge_inputs, selflearn.finished_runs;

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
