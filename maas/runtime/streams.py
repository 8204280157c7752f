"""Answers streamed as the model writes them, to a caller in this process.

POST /v1/chat/completions with `stream: true` opens a sink for its run before submitting it; the
responder stage that answers the run in this process (the request's own express lane, or a local
worker) takes the sink and the model feeds it each token as it arrives. A sink is taken once: an
attempt retried after a failure does not stream again (the caller already has part of the
failed one). A run answered by another process streams nothing here; its caller gets the finished
answer in pieces.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from maas.llm.types import Delta


class AnswerStreams:
    def __init__(self) -> None:
        self._sinks: dict[uuid.UUID, Delta] = {}

    @contextmanager
    def open(self, run_id: uuid.UUID, sink: Delta) -> Iterator[None]:
        """`sink` gets the run's answer tokens while the block runs (if this process answers)."""
        self._sinks[run_id] = sink
        try:
            yield
        finally:
            self._sinks.pop(run_id, None)

    def take(self, run_id: uuid.UUID) -> Delta | None:
        return self._sinks.pop(run_id, None)
