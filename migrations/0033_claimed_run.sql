-- One composite type for a claimed run's row, named for what it is: maas.stage_commit (migration
-- 0019: the commit's `finished`, then the claim's columns) is what every claim and stage commit
-- returns, built in one place (maas.claimed, maas/pipeline/functions.sql).
ALTER TYPE maas.stage_commit RENAME TO claimed_run;

-- The stage commits now write the attempt's LLM calls themselves (maas.log_llm_calls, the one
-- insert of them): their new signatures are in maas/pipeline/functions.sql; the old ones go.
DROP FUNCTION maas.commit_analyze(uuid, uuid, jsonb, text, jsonb, float8, text);
DROP FUNCTION maas.commit_assemble(
  uuid, uuid, text, integer, bigint[], real[], jsonb, boolean[], integer[], float8, text);
