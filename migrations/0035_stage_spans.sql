-- What a stage's time went to (issue 19): the run inspector nests these spans under the stage's
-- bar. {"assembler": [{name, depth, start_ms, ms, detail?}, ...]} (maas/memory/trace.py), written
-- by the stage's own commit (no write of its own); null for runs made before.
ALTER TABLE maas.pipeline_runs ADD COLUMN stage_spans jsonb;

-- The assembler's commit takes the spans: its new signature is in maas/pipeline/functions.sql
-- (applied after the migrations). The old one exists where the definitions were applied before
-- (not in a fresh database, whose migrations never made it).
DROP FUNCTION IF EXISTS maas.commit_assemble(
  uuid, uuid, text, integer, bigint[], real[], jsonb, boolean[], integer[], float8, text, uuid,
  jsonb);
