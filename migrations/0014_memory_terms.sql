-- BM25 postings: one row per (user, lexeme, memory), kept from maas.memories by triggers.
--
-- The BM25 arm used to find a user's matching memories through the GIN index on `search`, fetch
-- each one from the heap and unnest its tsvector to pick out the query's lexemes. A question with
-- a common word ("work", a name) matches a fifth of a big user's memories: at 100k memories that
-- was 22k heap fetches and unnests, 45-95 ms per search, and the GIN index (shared by every
-- tenant: btree_gin, which would let it lead with the user, is not in the embedded Postgres)
-- handed over other users' rows as well. Here the postings of one user's lexeme are one range of
-- a b-tree, and the primary key INCLUDEs what BM25 needs (term frequency, document length,
-- validity), so document frequencies and scores come from an index-only scan. The scores are the
-- same numbers as before: tf = cardinality(positions), doclen = length(search).
CREATE TABLE maas.memory_terms (
  user_id uuid NOT NULL,      -- no FK: rows follow the memories (statement triggers below)
  lexeme text NOT NULL,
  memory_id bigint NOT NULL,
  tf integer NOT NULL,
  doclen integer NOT NULL,
  valid boolean NOT NULL,     -- valid_to IS NULL of the memory
  PRIMARY KEY (user_id, lexeme, memory_id) INCLUDE (tf, doclen, valid)
);

CREATE FUNCTION maas.add_memory_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO maas.memory_terms (user_id, lexeme, memory_id, tf, doclen, valid)
  SELECT n.user_id, u.lexeme, n.id, cardinality(u.positions), length(n.search), n.valid_to IS NULL
  FROM new_rows n CROSS JOIN LATERAL unnest(n.search) AS u(lexeme, positions, weights)
  ORDER BY 1, 2, 3;  -- one lock order for concurrent writers
  RETURN NULL;
END $$;

CREATE FUNCTION maas.remove_memory_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM maas.memory_terms t
  USING (SELECT o.user_id, o.id, unnest(tsvector_to_array(o.search)) AS lexeme FROM old_rows o) d
  WHERE t.user_id = d.user_id AND t.lexeme = d.lexeme AND t.memory_id = d.id;
  RETURN NULL;
END $$;

-- Updates come one memory at a time (supersession, reopening); the text never changes in
-- practice, but if it does the postings are rebuilt.
CREATE FUNCTION maas.update_memory_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.search IS DISTINCT FROM OLD.search THEN
    DELETE FROM maas.memory_terms
    WHERE user_id = OLD.user_id AND lexeme = ANY (tsvector_to_array(OLD.search))
      AND memory_id = OLD.id;
    INSERT INTO maas.memory_terms (user_id, lexeme, memory_id, tf, doclen, valid)
    SELECT NEW.user_id, u.lexeme, NEW.id, cardinality(u.positions), length(NEW.search),
           NEW.valid_to IS NULL
    FROM unnest(NEW.search) AS u(lexeme, positions, weights);
  ELSIF (NEW.valid_to IS NULL) IS DISTINCT FROM (OLD.valid_to IS NULL) THEN
    UPDATE maas.memory_terms SET valid = NEW.valid_to IS NULL
    WHERE user_id = NEW.user_id AND lexeme = ANY (tsvector_to_array(NEW.search))
      AND memory_id = NEW.id;
  END IF;
  RETURN NULL;
END $$;

CREATE TRIGGER memories_terms_insert AFTER INSERT ON maas.memories
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION maas.add_memory_terms();
CREATE TRIGGER memories_terms_delete AFTER DELETE ON maas.memories
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION maas.remove_memory_terms();
CREATE TRIGGER memories_terms_update AFTER UPDATE OF valid_to, text ON maas.memories
  FOR EACH ROW EXECUTE FUNCTION maas.update_memory_terms();

INSERT INTO maas.memory_terms (user_id, lexeme, memory_id, tf, doclen, valid)
SELECT m.user_id, u.lexeme, m.id, cardinality(u.positions), length(m.search), m.valid_to IS NULL
FROM maas.memories m CROSS JOIN LATERAL unnest(m.search) AS u(lexeme, positions, weights);
