-- The sensor: copy finished runs from the view selflearn.finished_runs (migration 0007) into
-- selflearn.sensor_events, at most once per run (the primary key on run_id makes replays no-ops).

-- name: sensor_capture_ids
-- $1 run ids (uuid[]) named by notifications: record those that are finished.
WITH recorded AS (
INSERT INTO selflearn.sensor_events
  (run_id, user_id, thread_id, client_type, mode, param_version, experiment_arm, status, stop_at,
   error_class, failed_stage, started_at, finished_at, latency_ms, queue_ms, analyzer_ms,
   assembler_ms, responder_ms, prompt_tokens, completion_tokens, llm_calls, memories_retrieved,
   memories_used, found_anything, context_tokens)
SELECT run_id, user_id, thread_id, client_type, mode, param_version, experiment_arm, status,
       stop_at, error_class, failed_stage, started_at, finished_at, latency_ms, queue_ms,
       analyzer_ms, assembler_ms, responder_ms, prompt_tokens, completion_tokens, llm_calls,
       memories_retrieved, memories_used, found_anything, context_tokens
FROM selflearn.finished_runs WHERE run_id = ANY($1::uuid[])
ON CONFLICT (run_id) DO NOTHING
RETURNING run_id, client_type
), retrieved AS (
  -- and the retrieved memories with their provenance (migrations 0008, 0016) of emulator runs:
  -- only the teacher reads them, for the emulator's probes (200 memory lookups per run spared
  -- for every other run)
  INSERT INTO selflearn.sensor_retrievals (run_id, memory_ids, used, tokens, sources)
  SELECT x.run_id, x.memory_ids, x.used, x.tokens, x.sources
  FROM selflearn.finished_retrievals x
  WHERE x.run_id IN (SELECT run_id FROM recorded WHERE client_type = 'emulator')
  ON CONFLICT DO NOTHING
)
SELECT run_id FROM recorded

-- name: sensor_capture_missed
-- Backfill and lost notifications: up to $1 finished runs not recorded yet, oldest first.
WITH recorded AS (
INSERT INTO selflearn.sensor_events
  (run_id, user_id, thread_id, client_type, mode, param_version, experiment_arm, status, stop_at,
   error_class, failed_stage, started_at, finished_at, latency_ms, queue_ms, analyzer_ms,
   assembler_ms, responder_ms, prompt_tokens, completion_tokens, llm_calls, memories_retrieved,
   memories_used, found_anything, context_tokens)
SELECT f.run_id, f.user_id, f.thread_id, f.client_type, f.mode, f.param_version, f.experiment_arm,
       f.status, f.stop_at, f.error_class, f.failed_stage, f.started_at, f.finished_at,
       f.latency_ms, f.queue_ms, f.analyzer_ms, f.assembler_ms, f.responder_ms, f.prompt_tokens,
       f.completion_tokens, f.llm_calls, f.memories_retrieved, f.memories_used, f.found_anything,
       f.context_tokens
FROM selflearn.finished_runs f
WHERE NOT EXISTS (SELECT 1 FROM selflearn.sensor_events e WHERE e.run_id = f.run_id)
ORDER BY f.started_at
LIMIT $1
ON CONFLICT (run_id) DO NOTHING
RETURNING run_id, client_type
), retrieved AS (
  -- and the retrieved memories with their provenance (migrations 0008, 0016) of emulator runs:
  -- only the teacher reads them, for the emulator's probes (200 memory lookups per run spared
  -- for every other run)
  INSERT INTO selflearn.sensor_retrievals (run_id, memory_ids, used, tokens, sources)
  SELECT x.run_id, x.memory_ids, x.used, x.tokens, x.sources
  FROM selflearn.finished_retrievals x
  WHERE x.run_id IN (SELECT run_id FROM recorded WHERE client_type = 'emulator')
  ON CONFLICT DO NOTHING
)
SELECT run_id FROM recorded

-- name: sensor_stats
-- Finished runs MaaS still holds (retention prunes them; the sensor keeps its copies), rows
-- recorded, and the lag: seconds since the oldest finished run not yet recorded ended (0: none).
SELECT (SELECT count(*) FROM maas.pipeline_runs r
        WHERE r.status IN ('COMPLETED', 'FAILED') OR (r.status = 'READY' AND r.stop_at = 'READY'))
         AS maas_finished_runs,
       (SELECT count(*) FROM selflearn.sensor_events) AS sensor_events,
       coalesce((SELECT extract(epoch FROM clock_timestamp() - min(r.finished))
                 FROM (SELECT coalesce(p.completed_at, p.failed_at, p.ready_at) AS finished
                       FROM maas.pipeline_runs p
                       WHERE (p.status IN ('COMPLETED', 'FAILED')
                              OR (p.status = 'READY' AND p.stop_at = 'READY'))
                         AND NOT EXISTS (SELECT 1 FROM selflearn.sensor_events e
                                         WHERE e.run_id = p.id)) r), 0)::float8 AS lag_s
