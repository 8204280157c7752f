-- The claim queue index holds only runs that can still be claimed.
--
-- runs_claim_idx covered every run at NEW, ANALYZED or READY, and a /v1/context run ends at
-- READY (stop_at = READY): every ended context run stayed in the responder's queue index forever,
-- and the planner, expecting thousands of rows, read the whole table for each claim (10 ms with
-- 25k runs, growing with history; each worker polls, and an ended run rings). Now a run leaves
-- the index when it reaches its stop_at. claim_run repeats the predicate word for word, so that
-- a generic plan (which does not know the queue status) can use the index too.
DROP INDEX maas.runs_claim_idx;
CREATE INDEX runs_claim_idx ON maas.pipeline_runs (status, next_attempt_at, created_at)
  WHERE status IN ('NEW', 'ANALYZED', 'READY') AND stop_at <> status;
