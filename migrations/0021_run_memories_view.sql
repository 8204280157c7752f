-- maas.run_memories (migration 0016) reads each row's components with `components -> (rank - 1)`,
-- which detoasted and decompressed the run's whole JSON array (~10 kB for 200 candidates) once
-- per memory. ROWS FROM walks the five arrays side by side, each read once: the same rows.
CREATE OR REPLACE VIEW maas.run_memories AS
SELECT r.run_id, u.memory_id, u.rank::integer AS rank, u.score, u.components, u.used, u.tokens
FROM maas.run_retrievals r
CROSS JOIN LATERAL ROWS FROM (
  unnest(r.memory_ids), unnest(r.scores), jsonb_array_elements(r.components), unnest(r.used),
  unnest(r.tokens)
) WITH ORDINALITY AS u(memory_id, score, components, used, tokens, rank);
