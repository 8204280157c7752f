"""The run inspector's view model: a timeline of the status history, drawn as an SVG chart.

SVG geometry is attributes (x, width), not inline styles, so the strict CSP needs no
'unsafe-inline'."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

# What a run is doing while it sits in a status (until the next status change).
DOING = {
    "NEW": ("queue", "waiting for the analyzer"),
    "ANALYZING": ("stage", "analyzer"),
    "ANALYZED": ("queue", "waiting for the assembler"),
    "ASSEMBLING": ("stage", "assembler"),
    "READY": ("queue", "waiting for the responder"),
    "RESPONDING": ("stage", "responder"),
}
CHART_LABEL_W = 200
CHART_BAR_W = 380
ROW_H = 24


@dataclass(frozen=True)
class Span:
    label: str
    kind: str  # stage | queue | sub (a part of the stage above it, nested: depth >= 1)
    status: str
    attempt: int
    ms: float
    x: float  # SVG geometry, in user units
    width: float
    y: int
    depth: int = 0
    offset_ms: float = 0.0  # from the run's first event


@dataclass(frozen=True)
class SubSpan:
    """A part of a stage's work as its commit stored it (pipeline_runs.stage_spans)."""

    label: str
    depth: int  # 1 = a part of the stage, 2 = a part of that part
    start_ms: float  # from the start of the stage's work
    ms: float
    detail: str  # what it found, e.g. the candidates of each search arm


def _ms(a: datetime, b: datetime) -> float:
    return max((b - a).total_seconds() * 1000, 0.0)


def _label(event: dict[str, Any]) -> tuple[str, str]:
    """A claim counts attempts; going back to a queue keeps the error that sent it there."""
    kind, label = DOING.get(event["status"], ("queue", event["status"].lower()))
    if kind == "stage" and event["attempt"] > 1:
        label = f"{label} (attempt {event['attempt']})"
    elif kind == "queue" and event.get("error"):
        label = f"{label} (retry)"
    return kind, label


def spans(history: list[dict[str, Any]], parts: list[SubSpan] | None = None) -> list[Span]:
    """One span per status a run sat in, from its event to the next one; the assembler's parts
    (`parts`, its committed attempt's: the last one) nested under its bar, on the same scale."""
    if len(history) < 2:
        return []
    start, end = history[0]["at"], history[-1]["at"]
    total = max(_ms(start, end), 0.001)
    rows: list[Span] = []
    for event, after in zip(history, history[1:], strict=False):
        kind, label = _label(event)
        offset = _ms(start, event["at"])
        rows.append(_bar(label, kind, event, offset, _ms(event["at"], after["at"]), total))
    return _numbered(_nest(rows, parts or [], total))


def _bar(
    label: str, kind: str, event: dict[str, Any], offset: float, ms: float, total: float
) -> Span:
    width = max(ms / total * CHART_BAR_W, 1.5)
    x = CHART_LABEL_W + min(offset / total * CHART_BAR_W, CHART_BAR_W - width)
    geometry = (round(x, 2), round(width, 2), 0)
    return Span(label, kind, event["status"], event["attempt"], ms, *geometry, 0, offset)


def _nest(rows: list[Span], parts: list[SubSpan], total: float) -> list[Span]:
    """The parts go right under the last assembler bar (the attempt that committed them)."""
    at = next((i for i in reversed(range(len(rows))) if rows[i].status == "ASSEMBLING"), None)
    if at is None or not parts:
        return rows
    stage = rows[at]
    event = {"status": stage.status, "attempt": stage.attempt}
    nested = [
        replace(
            _bar(p.label, "sub", event, stage.offset_ms + p.start_ms, p.ms, total), depth=p.depth
        )
        for p in parts
    ]
    return rows[: at + 1] + nested + rows[at + 1 :]


def _numbered(rows: list[Span]) -> list[Span]:
    return [replace(r, y=i * ROW_H) for i, r in enumerate(rows)]


ARMS = {"bm25": "bm25", "trgm": "trigram", "vector": "vector"}


def sub_spans(stage_spans: dict[str, Any] | None, stage: str = "assembler") -> list[SubSpan]:
    """A stage's stored spans (maas/memory/trace.py), as the inspector shows them."""
    return [
        SubSpan(row["name"], row["depth"] + 1, row["start_ms"], row["ms"], _detail(row))
        for row in (stage_spans or {}).get(stage) or []
    ]


def _detail(row: dict[str, Any]) -> str:
    """Counts as words; an arm that did not run says "off"."""
    found = row.get("detail") or {}
    words = [f"{ARMS.get(k, k)} {'off' if v is None else v}" for k, v in found.items()]
    return ", ".join(words)


def unaccounted_ms(parts: list[SubSpan], stage_ms: float | None) -> float | None:
    """The stage's time outside its top-level parts: the claim's return, the commit."""
    if stage_ms is None or not parts:
        return None
    return max(stage_ms - sum(p.ms for p in parts if p.depth == 1), 0.0)


def budget(run: Any) -> int | None:
    """The token budget the assembler packed against: the request's, else the run's parameter."""
    if run["max_tokens"]:
        return int(run["max_tokens"])
    params = run["params"] or {}
    value = params.get("context.max_tokens")
    return None if value is None else int(value)


def fill_percent(tokens: int | None, limit: int | None) -> float:
    if not tokens or not limit:
        return 0.0
    return round(min(tokens / limit, 1.0) * 100, 1)
