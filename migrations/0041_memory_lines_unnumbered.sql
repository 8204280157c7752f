-- The packed timeline's memory lines lost their numbers ("12. I moved to Lyon" is now "I moved to
-- Lyon", maas/memory/budget.py): two tokens a line that nothing cited. memories.line_tokens
-- (0026) holds each line's tokens with its number, so the stored counts are forgotten here; the
-- packer counts a memory with no stored count itself (once per process), and the writer stores
-- the new count with every new memory. No trigger watches line_tokens.
UPDATE maas.memories SET line_tokens = NULL WHERE line_tokens IS NOT NULL;
