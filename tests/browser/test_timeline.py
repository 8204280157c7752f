"""The inspector's timeline geometry (pure; no browser): one bar per status a run sat in, retries
as their own bars, every bar inside the chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from web.inspector import (
    CHART_BAR_W,
    CHART_LABEL_W,
    budget,
    fill_percent,
    spans,
    sub_spans,
    unaccounted_ms,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def event(status: str, ms: float, attempt: int = 0, error: str | None = None) -> dict[str, object]:
    at = T0 + timedelta(milliseconds=ms)
    return {"status": status, "attempt": attempt, "error": error, "at": at}


def test_spans_label_stages_waits_and_retries_and_stay_inside_the_chart() -> None:
    history = [
        event("NEW", 0),
        event("ANALYZING", 5, attempt=1),
        event("NEW", 25, attempt=1, error="boom"),  # the analyzer failed once: back to the queue
        event("ANALYZING", 30, attempt=2),
        event("ANALYZED", 40),
        event("ASSEMBLING", 41, attempt=1),
        event("READY", 90),
        event("RESPONDING", 91, attempt=1),
        event("COMPLETED", 100),
    ]
    rows = spans(history)
    assert [r.label for r in rows] == [
        "waiting for the analyzer",
        "analyzer",
        "waiting for the analyzer (retry)",
        "analyzer (attempt 2)",
        "waiting for the assembler",
        "assembler",
        "waiting for the responder",
        "responder",
    ]
    assert [round(r.ms) for r in rows] == [5, 20, 5, 10, 1, 49, 1, 9]
    assert sum(r.ms for r in rows) == 100
    for row in rows:
        assert row.x >= CHART_LABEL_W and row.x + row.width <= CHART_LABEL_W + CHART_BAR_W + 0.01
    assert spans(history[:1]) == []


def test_budget_is_the_requests_or_the_runs_parameter() -> None:
    assert budget({"max_tokens": 500, "params": {"context.max_tokens": 1500}}) == 500
    assert budget({"max_tokens": None, "params": {"context.max_tokens": 1500}}) == 1500
    assert budget({"max_tokens": None, "params": None}) is None
    assert fill_percent(31, 1500) == 2.1 and fill_percent(None, 1500) == 0.0
    assert fill_percent(2000, 1500) == 100.0


def test_the_assembler_parts_nest_under_its_committed_attempt_on_the_same_scale() -> None:
    history = [
        event("NEW", 0),
        event("ANALYZING", 0, attempt=1),
        event("ANALYZED", 10),
        event("ASSEMBLING", 10, attempt=1),
        event("ANALYZED", 20, attempt=1, error="boom"),  # the first attempt failed: no parts
        event("ASSEMBLING", 20, attempt=2),
        event("READY", 60),
        event("RESPONDING", 60, attempt=1),
        event("COMPLETED", 100),
    ]
    stored = {
        "assembler": [
            {
                "name": "search",
                "depth": 0,
                "start_ms": 2.0,
                "ms": 20.0,
                "detail": {"candidates": 7},
            },
            {
                "name": "search statement",
                "depth": 1,
                "start_ms": 3.0,
                "ms": 10.0,
                "detail": {"bm25": 5, "trgm": None, "vector": 7},
            },
            {"name": "pack", "depth": 0, "start_ms": 30.0, "ms": 4.0},
        ]
    }
    parts = sub_spans(stored)
    assert [(p.label, p.depth, p.detail) for p in parts] == [
        ("search", 1, "candidates 7"),
        ("search statement", 2, "bm25 5, trigram off, vector 7"),
        ("pack", 1, ""),
    ]
    assert unaccounted_ms(parts, 40.0) == 16.0 and unaccounted_ms([], 40.0) is None
    rows = spans(history, parts)
    labels = [r.label for r in rows]
    assert labels[3:10] == [
        "assembler",  # the failed attempt: nothing nested
        "waiting for the assembler (retry)",
        "assembler (attempt 2)",
        "search",
        "search statement",
        "pack",
        "waiting for the responder",
    ]
    assert [r.depth for r in rows[5:9]] == [0, 1, 2, 1]
    assert [r.y for r in rows] == [i * 24 for i in range(len(rows))]
    scale = CHART_BAR_W / 100  # the run took 100 ms
    stage = rows[5]
    assert stage.x == CHART_LABEL_W + 20 * scale
    assert [(r.x, r.width) for r in rows[6:9]] == [
        (round(stage.x + 2 * scale, 2), 20 * scale),
        (round(stage.x + 3 * scale, 2), 10 * scale),
        (round(stage.x + 30 * scale, 2), 4 * scale),
    ]
    plain = [(r.label, r.x, r.width) for r in spans(history)]
    assert plain == [(r.label, r.x, r.width) for r in rows if r.kind != "sub"]
