"""The local embedder writes nothing to the log: sentence-transformers drew a progress bar for
every call when the log level was INFO (maas serve's default), flooding the log."""

from __future__ import annotations

import logging

import pytest

from maas.llm.embed import LocalEmbedder


async def test_local_embeddings_draw_no_progress_bar(capfd: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)  # as under `maas serve` (MAAS_LOG_LEVEL=INFO)
    try:
        vectors = await LocalEmbedder().embed(["My cat Miso is allergic to chicken."] * 3)
    finally:
        root.setLevel(level)
    assert len(vectors) == 3 and len(vectors[0]) == 384
    captured = capfd.readouterr()
    assert "Batches" not in captured.err and "it/s" not in captured.err
