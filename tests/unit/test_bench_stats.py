"""Pure parts of `maas bench pipeline`: percentiles, summaries, the corpus, the JSON report."""

from __future__ import annotations

import math

import pytest

from bench.chat import Outcome
from bench.corpus import make_facts, make_questions
from bench.pipeline import PerfConfig, Results
from bench.pipeline_report import render, to_json
from bench.preload import Loaded
from bench.stats import percentile, summarize
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


def _results() -> tuple[Results, PerfConfig]:
    cfg = PerfConfig(scales=(100, 1000), messages=2, queries=2, dialogs=2, users=1)
    res = Results(machine={"cpu_count": 2, "kernel": "6", "python": "3.11", "postgres": "18"})
    res.notify = {"notify_rtt_ms": 0.5, "select_rtt_ms": 0.05}
    res.loads = {100: Loaded(100, 110, 0.1), 1000: Loaded(1000, 1100, 0.5)}
    res.bare_search = {100: [1.0, 3.0], 1000: [2.0, 4.0]}
    res.context = {100: [10.0, 12.0], 1000: [20.0, 30.0]}
    res.chat = [Outcome("r1", "t1", 20.0), Outcome("r2", "t1", 32.0)]
    res.timings = [
        {"queue": 1, "analyzer": 2, "assembler": 3, "responder": 4, "total": 12},
        {"queue": 3, "analyzer": 4, "assembler": 5, "responder": 6, "total": 22},
    ]
    res.load = [Outcome("r3", "t2", 40.0), Outcome(None, None, 5.0, "HTTP 500 None: boom")]
    res.load_wall_s = 0.5
    res.archivist = (100, 40, 0.25)
    res.cold_start_s, res.bare_pg_start_s, res.erase_s = 2.0, 0.5, 0.4
    res.erased_memories, res.rss_mb = 1000, 120.0
    return res, cfg


def test_report_json_has_the_issue_keys_and_ratios() -> None:
    data = to_json(*_results())
    assert {"chat_latency_ms", "context_latency_ms", "messages_per_s", "archivist_turns_per_s",
            "cold_start_s", "erase_10k_s", "rss_mb", "floor"} <= set(data)  # fmt: skip
    assert data["chat_latency_ms"]["p50"] == pytest.approx(26.0)
    assert data["chat_latency_ms"]["memories"] == 1000  # the scale nearest 10k
    assert data["context_latency_ms"]["1000"]["p50"] == pytest.approx(25.0)
    assert data["floor"]["bare_search_ms"]["100"]["p50"] == pytest.approx(2.0)
    assert data["messages_per_s"] == pytest.approx(2.0)  # 1 ok in 0.5 s
    assert data["archivist_turns_per_s"] == pytest.approx(400.0)
    assert data["stages_ms"]["handoffs"]["p50"] == pytest.approx(3.0)  # 12-10, 22-18 -> 2, 4
    assert data["stages_ms"]["api"]["p50"] == pytest.approx(9.0)  # 20-12, 32-22 -> 8, 10
    chat = next(f for f in data["figures"] if f["name"].startswith("chat e2e p50"))
    assert chat["floor"] == pytest.approx(3.0 + 4 * 0.5)  # bare search p50 + 4 NOTIFY hops
    assert chat["ratio"] == pytest.approx(26.0 / 5.0, rel=1e-3) and chat["met"] is False
    cold = next(f for f in data["figures"] if f["name"] == "cold start")
    assert cold["ratio"] == pytest.approx(4.0) and cold["met"] is True


def test_render_shows_every_figure_beside_its_floor() -> None:
    text = render(*_results())
    assert "NOTIFY round trip 0.500 ms" in text
    for name in ("chat e2e p50 @1000", "context p95 @100", "messages/s", "archivist turns/s",
                 "cold start", "erase user", "peak RSS"):  # fmt: skip
        assert name in text
    assert "5.2x" in text  # chat p50 over its floor
