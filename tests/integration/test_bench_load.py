"""`maas bench load` runs end to end (tiny: 2 users, 3 dialogs, 2 s; the two-tenant row 1 s a phase)
and reports what it saw."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench.load import run_load
from maas.__main__ import build_parser


def test_bench_load_smoke(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAAS_DATABASE_URL", db_url)  # fresh_database makes its own database there
    out = tmp_path / "load.json"
    args = build_parser().parse_args(
        ["bench", "load", "--users", "2", "--concurrency", "3", "--duration", "2"]
        + ["--llm-latency-ms", "20", "--two-tenant-seconds", "1", "--json", str(out)]
    )
    assert isinstance(args, argparse.Namespace) and args.func.__name__ == "cmd_bench_load"
    assert run_load(args) == 0
    printed = capsys.readouterr().out
    assert "requests/s" in printed and "p95" in printed and "queues" in printed
    report = json.loads(out.read_text())
    assert report["errors"] == 0 and report["ok"] > 3
    assert report["samples"] and report["samples"][0]["pool_size"] > 0
    assert report["latency_ms"]["p50"] >= 40  # two scripted calls of 20 ms each
    assert "beside the flood" in printed
    pair = report["two_tenant"]
    assert pair["errors"] == 0 and pair["flood_ok"] > 3
    assert pair["quiet_chats"]["alone"] > 0 and pair["quiet_chats"]["beside_flood"] > 0
    assert pair["quiet_latency_ms"]["beside_flood"]["p50"] >= 40
