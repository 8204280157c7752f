-- Who said a memory, kept with it. The search read it per candidate from the memory's last source
-- message (a subquery: ~200 primary-key probes of maas.messages per search, 0.3-0.4 ms of its
-- ~2.7 at 10k memories). A memory's source messages change only by this table's own writes (the
-- upsert's and merge's provenance union) and a message's speaker never changes, so a row trigger
-- keeps the same value at write time: the speaker of the last of source_message_ids, as before.
ALTER TABLE maas.memories ADD COLUMN speaker text;

CREATE FUNCTION maas.memory_speaker() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.speaker := (SELECT s.speaker FROM maas.messages s
                  WHERE s.id = NEW.source_message_ids[cardinality(NEW.source_message_ids)]);
  RETURN NEW;
END $$;

CREATE TRIGGER memories_speaker BEFORE INSERT OR UPDATE OF source_message_ids ON maas.memories
FOR EACH ROW EXECUTE FUNCTION maas.memory_speaker();

-- the memories written before: only those whose last source message has a speaker change
UPDATE maas.memories m SET speaker = s.speaker
FROM maas.messages s
WHERE s.id = m.source_message_ids[cardinality(m.source_message_ids)] AND s.speaker IS NOT NULL;
