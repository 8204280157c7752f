"""`maas bench pipeline` runs end to end at a tiny scale and writes the JSON the issue asks for.

Shape only: timings on a shared 2-core box are not asserted (the harness reports them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import cmd_bench_pipeline
from maas.__main__ import build_parser

ARGS = ["--scale", "200", "--messages", "20", "--queries", "10", "--dialogs", "3", "--users", "2"]
ARGS += ["--load-memories", "50", "--load-seconds", "1", "--turns", "40", "--httpx-messages", "5"]
ARGS += ["--fresh", "3"]


def test_bench_pipeline_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "perf.json"
    args = build_parser().parse_args(["bench", "pipeline", *ARGS, "--json", str(out)])
    assert args.func is cmd_bench_pipeline and cmd_bench_pipeline(args) == 0
    captured = capsys.readouterr()
    assert "cold start" in captured.out and "bare search" in captured.out
    assert "preloaded 200 memories" in captured.err  # progress goes to stderr
    data = json.loads(out.read_text())
    assert set(data["chat_latency_ms"]) >= {"p50", "p95", "p99"}
    assert set(data["context_latency_ms"]) == {"200"}
    assert set(data["context_latency_ms"]["200"]) == {"p50", "p95"}
    assert set(data["floor"]) >= {"notify_rtt_ms", "bare_search_ms"}
    assert set(data["floor"]["bare_search_ms"]["200"]) == {"p50", "p95"}
    numbers = ("messages_per_s", "archivist_turns_per_s", "cold_start_s", "erase_10k_s", "rss_mb")
    assert all(isinstance(data[k], float | int) and data[k] > 0 for k in numbers)
    assert data["load"]["failures"] == 0 and data["load"]["completed"] > 0
    assert data["archivist"]["turns"] == 40 and data["archivist"]["memories"] > 0
    assert data["erase"]["memories"] == 200
    assert data["freshness_ms"]["samples"] == 3 and data["freshness_ms"]["p95"] > 0
    assert "freshness p95" in captured.out
    assert all(f["ratio"] is None or f["ratio"] > 0 for f in data["figures"])
    assert data["chat_latency_httpx_ms"]["p50"] > 0  # the comparison sequence ran
    cpu = data["load"]["cpu_ms_per_message"]
    assert set(cpu) == {"service", "postgres", "client"} and all(v > 0 for v in cpu.values())
