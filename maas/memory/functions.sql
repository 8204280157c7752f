-- Definitions of the memory store's trigger functions (statistics, postings, sources, speaker):
-- the one current text of each, applied after the migrations whenever this file changes.


CREATE OR REPLACE FUNCTION maas.track_memory_stats() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  d_docs integer := 0;
  d_len integer := 0;
  uid uuid;
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.valid_to IS NULL THEN
    d_docs := d_docs + 1; d_len := d_len + length(NEW.search); uid := NEW.user_id;
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.valid_to IS NULL THEN
    d_docs := d_docs - 1; d_len := d_len - length(OLD.search); uid := OLD.user_id;
  END IF;
  IF d_docs <> 0 OR d_len <> 0 THEN
    INSERT INTO maas.memory_stats AS s (user_id, docs, total_len) VALUES (uid, d_docs, d_len)
    ON CONFLICT (user_id) DO UPDATE
      SET docs = s.docs + excluded.docs, total_len = s.total_len + excluded.total_len;
  END IF;
  RETURN NULL;
END $$;

-- memory_stats kept per statement for inserts and deletes, not per row.
--
-- The row trigger of 0002 upserted the user's memory_stats row once per memory. Within one
-- transaction every upsert leaves a dead version of that same row which the next one must step
-- over, so a statement touching n memories costs O(n²): erasing a user with 10k memories spent
-- most of its second there, and bulk-loading 100k took 75 s. Transition tables give one upsert
-- per statement and user. Updates (validity, text) stay per row: a trigger with a column list
-- cannot have transition tables, and updates come one memory at a time.
CREATE OR REPLACE FUNCTION maas.add_memory_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO maas.memory_stats AS s (user_id, docs, total_len)
  SELECT user_id, count(*), sum(length(search)) FROM new_rows WHERE valid_to IS NULL
  GROUP BY user_id
  ON CONFLICT (user_id) DO UPDATE
    SET docs = s.docs + excluded.docs, total_len = s.total_len + excluded.total_len;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION maas.remove_memory_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO maas.memory_stats AS s (user_id, docs, total_len)
  SELECT user_id, -count(*), -sum(length(search)) FROM old_rows WHERE valid_to IS NULL
  GROUP BY user_id
  ON CONFLICT (user_id) DO UPDATE
    SET docs = s.docs + excluded.docs, total_len = s.total_len + excluded.total_len;
  RETURN NULL;
END $$;

-- A memory's postings: its own lexemes, and those of its context (migration 0039) that its own
-- text lacks, flagged `context`, each counted once (tf 1).
CREATE OR REPLACE FUNCTION maas.add_memory_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO maas.memory_terms (user_id, lexeme, memory_id, tf, doclen, valid, context)
  SELECT n.user_id, u.lexeme, n.id, cardinality(u.positions), length(n.search),
         n.valid_to IS NULL, false
  FROM new_rows n CROSS JOIN LATERAL unnest(n.search) AS u(lexeme, positions, weights)
  UNION ALL
  SELECT n.user_id, c.lexeme, n.id, 1, length(n.search), n.valid_to IS NULL, true
  FROM new_rows n CROSS JOIN LATERAL unnest(tsvector_to_array(n.context_search)) AS c(lexeme)
  WHERE c.lexeme <> ALL (tsvector_to_array(n.search))
  ORDER BY 1, 2, 3;  -- one lock order for concurrent writers
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION maas.remove_memory_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM maas.memory_terms t
  USING (SELECT o.user_id, o.id, unnest(maas.memory_lexemes(o.search, o.context_search)) AS lexeme
         FROM old_rows o) d
  WHERE t.user_id = d.user_id AND t.lexeme = d.lexeme AND t.memory_id = d.id;
  RETURN NULL;
END $$;

-- Every lexeme a memory has postings for: its own and its context's.
CREATE OR REPLACE FUNCTION maas.memory_lexemes(p_search tsvector, p_context tsvector)
RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
  SELECT tsvector_to_array(p_search) || coalesce(tsvector_to_array(p_context), '{}')
$$;

-- Updates come one memory at a time (supersession, reopening); the text never changes in
-- practice, but if it does the postings are rebuilt.
CREATE OR REPLACE FUNCTION maas.update_memory_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.search IS DISTINCT FROM OLD.search
     OR NEW.context_search IS DISTINCT FROM OLD.context_search THEN
    DELETE FROM maas.memory_terms
    WHERE user_id = OLD.user_id
      AND lexeme = ANY (maas.memory_lexemes(OLD.search, OLD.context_search))
      AND memory_id = OLD.id;
    INSERT INTO maas.memory_terms (user_id, lexeme, memory_id, tf, doclen, valid, context)
    SELECT NEW.user_id, u.lexeme, NEW.id, cardinality(u.positions), length(NEW.search),
           NEW.valid_to IS NULL, false
    FROM unnest(NEW.search) AS u(lexeme, positions, weights)
    UNION ALL
    SELECT NEW.user_id, c.lexeme, NEW.id, 1, length(NEW.search), NEW.valid_to IS NULL, true
    FROM unnest(tsvector_to_array(NEW.context_search)) AS c(lexeme)
    WHERE c.lexeme <> ALL (tsvector_to_array(NEW.search));
  ELSIF (NEW.valid_to IS NULL) IS DISTINCT FROM (OLD.valid_to IS NULL) THEN
    UPDATE maas.memory_terms SET valid = NEW.valid_to IS NULL
    WHERE user_id = NEW.user_id
      AND lexeme = ANY (maas.memory_lexemes(NEW.search, NEW.context_search))
      AND memory_id = NEW.id;
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION maas.add_memory_sources() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO maas.memory_sources (message_id, memory_id)
  SELECT DISTINCT s.mid, n.id
  FROM new_rows n CROSS JOIN LATERAL unnest(n.source_message_ids) AS s(mid)
  ORDER BY 1, 2  -- one lock order for concurrent writers
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION maas.remove_memory_sources() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM maas.memory_sources s USING old_rows o WHERE s.memory_id = o.id;
  RETURN NULL;
END $$;

-- Sources change one memory at a time (the archivist merges a fact said again).
CREATE OR REPLACE FUNCTION maas.update_memory_sources() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.source_message_ids IS DISTINCT FROM OLD.source_message_ids THEN
    DELETE FROM maas.memory_sources
    WHERE memory_id = NEW.id AND NOT (message_id = ANY (NEW.source_message_ids));
    INSERT INTO maas.memory_sources (message_id, memory_id)
    SELECT DISTINCT s.mid, NEW.id FROM unnest(NEW.source_message_ids) AS s(mid)
    ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION maas.memory_speaker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.speaker := (SELECT s.speaker FROM maas.messages s
                  WHERE s.id = NEW.source_message_ids[cardinality(NEW.source_message_ids)]);
  RETURN NEW;
END $$;
