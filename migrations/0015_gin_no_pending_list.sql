-- GIN indexes on maas.memories with no pending list, or a small one.
--
-- With fastupdate on (Postgres's default) new entries go to an unsorted pending list that is
-- merged only by VACUUM or once it reaches gin_pending_list_limit (4 MB), and every index scan
-- reads the whole list first. The archivist inserts memories all the time, so the list was
-- often large: the assembler's sibling lookup (one probe of memories_sources_idx per candidate's
-- message, on every search) read ~31 pages per probe, 58 ms per search on a box holding 400k
-- memories; after a gin_clean_pending_list the same query took 1.9 ms.
-- memories_sources_idx (one or two keys per memory) is updated directly. The text indexes (dozens
-- of keys per memory; read only by the optional trigram arm and the memory list's search) keep a
-- pending list of at most 256 kB: direct updates there cost the harness's 100k preload twice the
-- time and the archivist a fifth of its throughput.
ALTER INDEX maas.memories_sources_idx SET (fastupdate = off);
ALTER INDEX maas.memories_search_idx SET (gin_pending_list_limit = 256);
ALTER INDEX maas.memories_trgm_idx SET (gin_pending_list_limit = 256);
-- what is pending now goes into the index proper
SELECT gin_clean_pending_list('maas.memories_sources_idx'::regclass);
SELECT gin_clean_pending_list('maas.memories_search_idx'::regclass);
SELECT gin_clean_pending_list('maas.memories_trgm_idx'::regclass);
