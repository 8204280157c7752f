"""The inspector's timeline geometry (pure; no browser): one bar per status a run sat in, retries
as their own bars, every bar inside the chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from web.inspector import CHART_BAR_W, CHART_LABEL_W, budget, fill_percent, spans

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
