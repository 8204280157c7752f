"""A run's retrieved memories as the assembler's commit stores them (run_retrievals: parallel
arrays in rank order) and as the reply of the request that drove the run returns them, without
reading them back (the run_memories view's rows: scores as stored, float32; components in jsonb's
key order)."""

from __future__ import annotations

from array import array
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson

from maas.agents.assembler import Assembled
from maas.memory.search import Candidate

MemoryRows = Callable[[bool], list[dict[str, Any]]]  # (packed ones only?) -> the run's memories


def components(found: list[Candidate]) -> list[dict[str, float]]:
    """Each candidate's components as stored (written, and returned in the reply)."""
    return [_components(c) for c in found]


def columns(assembled: Assembled, stored: list[dict[str, float]]) -> list[Any]:
    """ids, scores, components (one JSON array as text), used, tokens: commit_assemble's."""
    found, packed = assembled.found, assembled.packed
    return [
        [c.id for c in found],
        [c.score for c in found],
        orjson.dumps(stored).decode(),
        [c.id in packed.used_ids for c in found],
        [packed.line_tokens.get(c.id, 0) for c in found],
    ]


def reply_rows(assembled: Assembled, stored: list[dict[str, float]]) -> MemoryRows:
    """The run's memories as the run_memories query returns them (argument: packed ones only)."""

    def rows(used_only: bool) -> list[dict[str, Any]]:
        used, tokens = assembled.packed.used_ids, assembled.packed.line_tokens
        scores = array("f", [c.score for c in assembled.found]).tolist()
        found = zip(assembled.found, scores, stored, strict=True)
        return [
            {
                "memory_id": c.id,
                "rank": rank,
                "score": score,
                "components": comps,
                "used": c.id in used,
                "tokens": tokens.get(c.id, 0),
                "text": c.text,
                "source_message_ids": c.source_message_ids,
                "source_thread_id": c.source_thread_id,
                "event_time": c.event_time,
            }
            for rank, (c, score, comps) in enumerate(found, start=1)
            if c.id in used or not used_only
        ]

    return rows


def _components(c: Candidate) -> dict[str, float]:
    """Rounded, in jsonb's key order, as a reader gets them back."""
    values = c.components
    return {k: round(values[k], 4) for k in _jsonb_order(tuple(values))}


@lru_cache(maxsize=256)
def _jsonb_order(keys: tuple[str, ...]) -> tuple[str, ...]:
    """jsonb keeps an object's keys shorter first, then bytewise (a handful of key sets)."""
    return tuple(sorted(keys, key=lambda k: (len(k.encode()), k.encode())))
