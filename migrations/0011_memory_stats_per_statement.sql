-- memory_stats kept per statement for inserts and deletes, not per row.
--
-- The row trigger of 0002 upserted the user's memory_stats row once per memory. Within one
-- transaction every upsert leaves a dead version of that same row which the next one must step
-- over, so a statement touching n memories costs O(n²): erasing a user with 10k memories spent
-- most of its second there, and bulk-loading 100k took 75 s. Transition tables give one upsert
-- per statement and user. Updates (validity, text) stay per row: a trigger with a column list
-- cannot have transition tables, and updates come one memory at a time.
CREATE FUNCTION maas.add_memory_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO maas.memory_stats AS s (user_id, docs, total_len)
  SELECT user_id, count(*), sum(length(search)) FROM new_rows WHERE valid_to IS NULL
  GROUP BY user_id
  ON CONFLICT (user_id) DO UPDATE
    SET docs = s.docs + excluded.docs, total_len = s.total_len + excluded.total_len;
  RETURN NULL;
END $$;

CREATE FUNCTION maas.remove_memory_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO maas.memory_stats AS s (user_id, docs, total_len)
  SELECT user_id, -count(*), -sum(length(search)) FROM old_rows WHERE valid_to IS NULL
  GROUP BY user_id
  ON CONFLICT (user_id) DO UPDATE
    SET docs = s.docs + excluded.docs, total_len = s.total_len + excluded.total_len;
  RETURN NULL;
END $$;

DROP TRIGGER memories_stats ON maas.memories;
CREATE TRIGGER memories_stats_insert AFTER INSERT ON maas.memories
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION maas.add_memory_stats();
CREATE TRIGGER memories_stats_delete AFTER DELETE ON maas.memories
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION maas.remove_memory_stats();
-- The row function of 0002 still handles updates (it ignores a row whose validity and length
-- did not change).
CREATE TRIGGER memories_stats_update AFTER UPDATE OF valid_to, text ON maas.memories
  FOR EACH ROW EXECUTE FUNCTION maas.track_memory_stats();
