"""Pure parts of `maas bench pipeline`: percentiles, summaries, the corpus, the JSON report."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from maas.bench import (
    STAGES,
    BenchConfig,
    Outcome,
    Report,
    make_facts,
    make_questions,
    percentile,
    render,
    summarize,
    to_json,
)
from maas.memory.store import fact_key


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([1, 2, 3, 4], 0, 1.0),
        ([1, 2, 3, 4], 50, 2.5),  # rank 1.5: halfway between 2 and 3
        ([1, 2, 3, 4], 95, 3.85),  # rank 2.85
        ([1, 2, 3, 4], 99, 3.97),  # rank 2.97
        ([1, 2, 3, 4], 100, 4.0),
        ([4, 1, 3, 2], 50, 2.5),  # order of the input does not matter
        ([0, 10], 25, 2.5),
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 90, 9.1),  # rank 8.1
        ([7], 99, 7.0),
        ([3, 1, 2], 50, 2.0),  # odd count: the middle value
        ([5, 5, 5, 5], 95, 5.0),
    ],
)
def test_percentile_interpolates_linearly(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == pytest.approx(expected)


def test_percentile_rejects_no_values_and_bad_p() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        percentile([1.0], -1)


def test_percentile_does_not_sort_the_caller_list() -> None:
    values = [3.0, 1.0, 2.0]
    percentile(values, 50)
    assert values == [3.0, 1.0, 2.0]


def test_summarize() -> None:
    s = summarize([2, 4, 6, 8])
    assert s["n"] == 4
    assert s["mean"] == pytest.approx(5.0)
    assert s["min"] == 2 and s["max"] == 8
    assert s["p50"] == pytest.approx(5.0)
    assert s["p95"] == pytest.approx(7.7)  # rank 2.85: 6 + 0.85 * 2
    assert s["p99"] == pytest.approx(7.94)  # rank 2.97: 6 + 0.97 * 2


def test_summarize_of_nothing_is_nan() -> None:
    s = summarize([])
    assert s["n"] == 0
    assert all(math.isnan(s[k]) for k in ("mean", "min", "p50", "p95", "p99", "max"))


def test_facts_are_distinct_varied_and_deterministic() -> None:
    facts = make_facts(500)
    assert len(facts) == 500
    assert len({fact_key(f.text) for f in facts}) == 500
    assert facts == make_facts(500)
    assert len({f.question.split()[0] for f in facts}) >= 3  # what / when / who / where
    assert any(f.event_time is not None for f in facts)
    assert all(0 <= f.importance <= 1 for f in facts)


def test_questions_ask_about_the_facts() -> None:
    facts = make_facts(20)
    questions = make_questions(facts, 100)
    assert len(questions) == 100
    assert set(questions) <= {f.question for f in facts}
    assert len(make_questions([], 5)) == 5  # no memories: questions about invented facts


def _report() -> Report:
    timings: dict[str, dict[str, float]] = {
        "r1": {"queue": 1, "analyzer": 2, "assembler": 3, "responder": 4, "total": 12},
        "r2": {"queue": 3, "analyzer": 4, "assembler": 5, "responder": 6, "total": 22},
    }
    outcomes = [
        Outcome("r1", "t1", 20.0, None, 3),
        Outcome("r2", "t1", 32.0, None, 5),
        Outcome(None, None, 5.0, "HTTP 500 None: boom"),
    ]
    machine = {"cpu_count": 2, "platform": "x", "python": "3.11", "event_loop": "asyncio"}
    machine |= {"postgres": "18", "database": "embedded"}
    floor = {"notify_rtt_ms": 0.1, "select_rtt_ms": 0.05}
    cfg = BenchConfig(3, 2, 100, Path("x.json"))
    return Report(cfg, machine, 100, 0.5, outcomes, timings, floor)


def test_report_figures_and_json_shape() -> None:
    report = _report()
    assert report.completed == 2 and report.failures == 1
    assert report.messages_per_s == pytest.approx(4.0)
    data = to_json(report)
    assert set(data["chat_latency_ms"]) >= {"p50", "p95", "p99"}
    assert data["chat_latency_ms"]["p50"] == pytest.approx(26.0)
    assert set(data["stages_ms"]) >= set(STAGES)
    assert data["stages_ms"]["total"]["p50"] == pytest.approx(17.0)
    assert data["stages_ms"]["handoffs"]["p50"] == pytest.approx(3.0)  # 12-10, 22-18 -> 2, 4
    assert data["stages_ms"]["api"]["p50"] == pytest.approx(9.0)  # 20-12, 32-22 -> 8, 10
    assert data["memories_used_per_answer"] == pytest.approx(4.0)
    assert data["failures"] == 1 and data["memories"] == 100
    assert data["messages"] == 3 and data["concurrency"] == 2
    assert data["floor"]["notify_rtt_ms"] == pytest.approx(0.1)
    assert data["machine"]["cpu_count"] == 2


def test_render_is_an_aligned_table() -> None:
    text = render(_report())
    assert "scripted zero-latency LLM" in text
    assert "messages/s" in text and "failures     1" in text and "HTTP 500" in text
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "latency (ms)" in line)
    table = lines[start : lines.index("", start)]
    assert [line.split()[0] for line in table[1:]] == [
        "queue", "analyzer", "assembler", "responder", "stage", "total", "HTTP", "chat",
    ]  # fmt: skip
    assert len({len(line) for line in table}) == 1  # header and rows share the column widths
