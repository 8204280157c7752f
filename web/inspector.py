"""The run inspector's view model: a timeline of the status history, drawn as an SVG chart.

SVG geometry is attributes (x, width), not inline styles, so the strict CSP needs no
'unsafe-inline'."""

from __future__ import annotations

from dataclasses import dataclass
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
    kind: str  # stage | queue
    status: str
    attempt: int
    ms: float
    x: float  # SVG geometry, in user units
    width: float
    y: int


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


def spans(history: list[dict[str, Any]]) -> list[Span]:
    """One span per status a run sat in, from its event to the next one."""
    if len(history) < 2:
        return []
    start, end = history[0]["at"], history[-1]["at"]
    total = max(_ms(start, end), 0.001)
    rows: list[Span] = []
    for i, (event, after) in enumerate(zip(history, history[1:], strict=False)):
        kind, label = _label(event)
        offset = _ms(start, event["at"]) / total * CHART_BAR_W
        width = max(_ms(event["at"], after["at"]) / total * CHART_BAR_W, 1.5)
        rows.append(
            Span(
                label=label,
                kind=kind,
                status=event["status"],
                attempt=event["attempt"],
                ms=_ms(event["at"], after["at"]),
                x=round(CHART_LABEL_W + min(offset, CHART_BAR_W - width), 2),
                width=round(width, 2),
                y=i * ROW_H,
            )
        )
    return rows


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
