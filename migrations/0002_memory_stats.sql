-- Per-user corpus statistics for BM25 (document count and total length of the valid memories),
-- kept exact by a trigger so a search never scans the user's whole memory to get them.
CREATE TABLE maas.memory_stats (
  user_id uuid PRIMARY KEY,  -- no FK: rows are adjusted while a user's memories cascade away
  docs bigint NOT NULL DEFAULT 0,
  total_len bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION maas.track_memory_stats() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER memories_stats AFTER INSERT OR DELETE OR UPDATE OF valid_to, text ON maas.memories
  FOR EACH ROW EXECUTE FUNCTION maas.track_memory_stats();

INSERT INTO maas.memory_stats (user_id, docs, total_len)
SELECT user_id, count(*), sum(length(search)) FROM maas.memories WHERE valid_to IS NULL
GROUP BY user_id;
