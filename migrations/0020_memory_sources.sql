-- Provenance lookup by message: one b-tree row per (source message, memory), kept from
-- maas.memories by triggers, instead of the GIN index on memories.source_message_ids.
--
-- Every search looks up the memories made from the same messages as its candidates (small-to-big
-- siblings): up to 200 message ids. Through the GIN index that was one probe per message id
-- (~8 µs each, 1.5-1.8 ms per search at 10k memories on a box of 400k; and with fastupdate, the
-- pending list before migration 0015); a b-tree probe costs a fraction of that. Nothing else
-- read the GIN index, so it goes.
CREATE TABLE maas.memory_sources (
  message_id bigint NOT NULL,
  memory_id bigint NOT NULL,   -- no FK: rows follow the memories (triggers below)
  PRIMARY KEY (message_id, memory_id)
);
CREATE INDEX memory_sources_memory_idx ON maas.memory_sources (memory_id);

CREATE FUNCTION maas.add_memory_sources() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO maas.memory_sources (message_id, memory_id)
  SELECT DISTINCT s.mid, n.id
  FROM new_rows n CROSS JOIN LATERAL unnest(n.source_message_ids) AS s(mid)
  ORDER BY 1, 2  -- one lock order for concurrent writers
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;

CREATE FUNCTION maas.remove_memory_sources() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM maas.memory_sources s USING old_rows o WHERE s.memory_id = o.id;
  RETURN NULL;
END $$;

-- Sources change one memory at a time (the archivist merges a fact said again).
CREATE FUNCTION maas.update_memory_sources() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER memories_sources_insert AFTER INSERT ON maas.memories
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION maas.add_memory_sources();
CREATE TRIGGER memories_sources_delete AFTER DELETE ON maas.memories
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION maas.remove_memory_sources();
CREATE TRIGGER memories_sources_update AFTER UPDATE OF source_message_ids ON maas.memories
  FOR EACH ROW EXECUTE FUNCTION maas.update_memory_sources();

INSERT INTO maas.memory_sources (message_id, memory_id)
SELECT DISTINCT s.mid, m.id
FROM maas.memories m CROSS JOIN LATERAL unnest(m.source_message_ids) AS s(mid);

DROP INDEX maas.memories_sources_idx;
ANALYZE maas.memory_sources;
