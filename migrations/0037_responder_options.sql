-- The client's own instructions for the responder (issue 17, POST /v1/chat/completions in LLM
-- mode): its system message and the sampling options it sent (temperature, top_p, max_tokens,
-- stop, ...), kept on the run so whichever process answers it forwards them to the model. Null
-- for every other run. The claim's row carries them (maas.claimed, pipeline/functions.sql).
ALTER TABLE maas.pipeline_runs ADD COLUMN responder_options jsonb;
ALTER TYPE maas.claimed_run ADD ATTRIBUTE responder_options jsonb;

-- submit_run takes them (its new signature is in maas/pipeline/functions.sql); the old one goes.
DROP FUNCTION maas.submit_run(
  uuid, uuid, uuid, text, text, text, text, text, text, integer, float8, text);
