-- The archivist's near-duplicate check (`find_near_duplicate`: a valid memory of user $1 with
-- text % $2) had no index that serves both conditions: the planner either walked the user's
-- whole memory computing similarity() on every row (35 ms per write for a user with 1k memories)
-- or scanned the global trigram GIN index across every user's memories. A GiST index on
-- (user, text trigrams) answers it in one scan: 2-4 ms per write in the same database. btree_gist
-- (a contrib extension, like pg_trgm) lets a GiST index lead with the uuid. siglen=256 keeps
-- the trigram signatures of sentence-long texts from saturating (the default 12 bytes made a
-- 100k-memory user's check ten times slower than the GIN path).
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE INDEX memories_user_trgm_gist ON maas.memories
  USING gist (user_id, text gist_trgm_ops (siglen = 256)) WHERE valid_to IS NULL;
