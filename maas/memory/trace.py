"""A stage's sub-spans, as a trace viewer nests them under the stage: what the assembler's time
went to (embedding the query, the search statement, ranking, packing). Timed with the monotonic
clock in the process; kept with the run by the stage's commit (pipeline_runs.stage_spans), so
recording them costs no write of its own."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Detail = dict[str, int | None]  # counts a span found (None: the part did not run)


@dataclass
class Span:
    name: str
    depth: int  # 0 = a child of the stage, 1 = a child of the span above it
    start_ms: float  # from the start of the stage's work
    ms: float = 0.0
    detail: Detail = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "name": self.name,
            "depth": self.depth,
            "start_ms": round(self.start_ms, 3),
            "ms": round(self.ms, 3),
        }
        if self.detail:
            row["detail"] = self.detail
        return row


@dataclass
class Spans:
    """The spans of one stage attempt, in the order they started."""

    t0: float = field(default_factory=time.perf_counter)
    rows: list[Span] = field(default_factory=list)
    _depth: int = 0

    @contextmanager
    def span(self, name: str) -> Iterator[Span]:
        """Times the block; a span opened inside it is its child. The caller may fill `detail`."""
        start = time.perf_counter()
        row = Span(name, self._depth, (start - self.t0) * 1000)
        self.rows.append(row)
        self._depth += 1
        try:
            yield row
        finally:
            self._depth -= 1
            row.ms = (time.perf_counter() - start) * 1000

    def as_json(self) -> list[dict[str, Any]]:
        return [s.as_json() for s in self.rows]
