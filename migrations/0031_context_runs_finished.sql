-- A /v1/context run is finished at READY (its stop_at): the retention prune and the unfinished
-- count of /metrics now say so (issue 20). runs_finished_idx, which serves the prune, held only
-- COMPLETED and FAILED runs, so ended context runs were never pruned.
DROP INDEX maas.runs_finished_idx;
CREATE INDEX runs_finished_idx ON maas.pipeline_runs (created_at)
  WHERE status IN ('COMPLETED', 'FAILED') OR status = stop_at;
