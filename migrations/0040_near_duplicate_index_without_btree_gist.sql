-- The archivist's near-duplicate check (`find_near_duplicate`: a valid memory of user $1 with
-- text % $2, nearest first) needs an index that serves both conditions: without one the planner
-- walks the user's whole memory computing similarity() (35 ms per write at 1k memories) or scans
-- the global trigram GIN index across every user's memories. A GiST index can lead with the user
-- only through an operator class for it; uuid has none in core Postgres (btree_gist, which
-- 0012's index used, is not in the embedded build any more), ranges have one built in. So the
-- index leads with the user's hash as a one-point range, and the query names the same range:
-- a hash collision only adds rows that `user_id = $1` then filters out. siglen=256 keeps the
-- trigram signatures of sentence-long texts from saturating.
DROP INDEX IF EXISTS maas.memories_user_trgm_gist;
CREATE INDEX memories_user_trgm ON maas.memories USING gist (
  int8range(uuid_hash(user_id), uuid_hash(user_id), '[]'),
  text gist_trgm_ops (siglen = 256)
) WHERE valid_to IS NULL;
