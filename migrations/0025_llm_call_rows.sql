-- The shape of a stage attempt's LLM calls as the service sends them (a JSON array of CallLog,
-- maas/pipeline/calls.py), in one place: the stage commits and insert_llm_calls read it from here.
CREATE FUNCTION maas.llm_call_rows(p_calls jsonb)
RETURNS TABLE (stage text, model text, prompt_tokens integer, completion_tokens integer, ms real,
               outcome text, error text)
LANGUAGE sql IMMUTABLE AS $$
  SELECT * FROM jsonb_to_recordset(p_calls) AS c(
    stage text, model text, prompt_tokens integer, completion_tokens integer, ms real,
    outcome text, error text)
$$;
