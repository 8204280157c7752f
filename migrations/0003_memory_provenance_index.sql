-- Find the memories derived from given messages (sibling chunks of one turn, provenance links).
CREATE INDEX memories_sources_idx ON maas.memories USING gin (source_message_ids);
