-- A memory's context terms (issue 22): the lexemes of the first words of the turn it answers
-- (archivist.context_terms), kept beside its own and searched by BM25 at a fraction of a term
-- (retrieval.w_context_terms), so "They make me think of strength" said after "I adopted three
-- turtles" is found by "turtles" in the full-text arm too. Only the search sees them: the
-- memory's text, its length for BM25 and its packed cost are its own. The postings trigger
-- functions (maas/memory/functions.sql) write both kinds; a context lexeme the memory's own text
-- has is not written twice.
ALTER TABLE maas.memories ADD COLUMN context_search tsvector;
ALTER TABLE maas.memory_terms ADD COLUMN context boolean NOT NULL DEFAULT false;
ALTER TABLE maas.memory_terms DROP CONSTRAINT memory_terms_pkey,
  ADD CONSTRAINT memory_terms_pkey PRIMARY KEY (user_id, lexeme, memory_id)
    INCLUDE (tf, doclen, valid, context);
DROP TRIGGER memories_terms_update ON maas.memories;
CREATE TRIGGER memories_terms_update AFTER UPDATE OF valid_to, text, context_search
  ON maas.memories FOR EACH ROW EXECUTE FUNCTION maas.update_memory_terms();
