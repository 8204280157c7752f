-- A memory's text never changes, and the assembler counts the tokens of every candidate's line
-- on every run: tiktoken for each line not seen before by the process was the largest part of
-- packing (~1 ms of a chat at 10k memories). The writer counts it once and stores it here: the
-- tokens of the memory's packed line ('99. <text>' and a newline, maas/memory/budget.py) in
-- cl100k_base. Null for memories written before this migration: the packer counts those itself,
-- as it does for any other encoding.
ALTER TABLE maas.memories ADD COLUMN line_tokens integer;
