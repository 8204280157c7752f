-- The OpenAI-compatible endpoint (maas/api/openai_compat.py).

-- name: ensure_thread
-- The thread $1 of user $2 (titled $3 when new), made if it does not exist yet. Its id is
-- derived from the user's id and the conversation (maas/api/openai_compat.py), so another user's
-- conversation can never name it; a conflict with someone else's thread leaves it untouched and
-- the submit then refuses it (404).
INSERT INTO maas.threads (id, user_id, title) VALUES ($1, $2, $3)
ON CONFLICT (id) DO NOTHING

-- name: run_token_usage
-- The tokens of run $1's model calls (owner $2), for the OpenAI `usage` object.
SELECT coalesce(sum(prompt_tokens), 0)::integer AS prompt,
       coalesce(sum(completion_tokens), 0)::integer AS completion
FROM maas.llm_calls WHERE run_id = $1 AND user_id = $2

-- name: openai_caller
-- The caller of key hash $1 and its LLM mode (null = the service's); a revoked key finds nobody.
SELECT id, llm_mode FROM maas.users WHERE api_key_hash = $1 AND revoked_at IS NULL
