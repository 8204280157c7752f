"""`maas bench pipeline|locomo|compare|load`, registered through the `maas.commands` entry point."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def cmd_bench_pipeline(args: argparse.Namespace) -> int:
    from bench.pipeline import PerfConfig
    from bench.pipeline_report import run

    try:
        scales = tuple(int(s) for s in args.scale.split(",") if s.strip())
        if not scales or min(scales, default=0) < 1 or min(args.messages, args.queries) < 1:
            raise ValueError("--scale, --messages and --queries must be >= 1")
        if args.fresh < 1:
            raise ValueError("--fresh must be >= 1")
    except ValueError as exc:
        print(f"maas bench pipeline: {exc}", file=sys.stderr)
        return 2
    cfg = PerfConfig(
        scales, args.messages, args.queries, args.dialogs, args.users, args.load_memories,
        args.load_seconds, args.turns, args.json, args.httpx_messages, args.fresh,
    )  # fmt: skip
    return run(cfg)


def cmd_bench_locomo(args: argparse.Namespace) -> int:
    from bench.locomo import main as run_locomo

    code: int = run_locomo(args)
    return code


def cmd_bench_compare(args: argparse.Namespace) -> int:
    from bench.locomo_compare import main as run_compare

    if not 0 < args.alpha < 1:
        print("maas bench compare: --alpha must be between 0 and 1", file=sys.stderr)
        return 2
    return run_compare(args.before, args.after, args.alpha, args.json)


def cmd_bench_load(args: argparse.Namespace) -> int:
    from bench.load import run_load

    code: int = run_load(args)
    return code


def _add_pipeline(bench: Any) -> None:
    pipe = bench.add_parser(
        "pipeline", help="performance harness: latency by memory count, floor, throughput"
    )
    pipe.add_argument("--scale", default="1000,10000,100000", help="memory counts, comma-separated")
    pipe.add_argument("--messages", type=int, default=200, help="chat messages at ~10k memories")
    pipe.add_argument("--queries", type=int, default=100, help="/v1/context queries per scale")
    pipe.add_argument("--dialogs", type=int, default=50, help="concurrent dialogs (throughput)")
    pipe.add_argument("--users", type=int, default=10, help="users the dialogs are spread over")
    pipe.add_argument("--load-memories", type=int, default=1000, help="memories per load user")
    pipe.add_argument("--load-seconds", type=float, default=20.0)
    pipe.add_argument("--turns", type=int, default=1000, help="turns the archivist ingests")
    pipe.add_argument("--fresh", type=int, default=30, help="facts timed told -> found (>= 1)")
    pipe.add_argument(
        "--httpx-messages", type=int, default=50, help="chat messages also sent with httpx"
    )
    pipe.add_argument("--json", type=Path, default=None)
    pipe.set_defaults(func=cmd_bench_pipeline)


def _add_locomo(bench: Any) -> None:
    locomo = bench.add_parser("locomo", help="LoCoMo retrieval through /v1/context vs BM25")
    locomo.add_argument("--data", type=Path, required=True, help="directory of LoCoMo *.json")
    locomo.add_argument("--json", type=Path, default=None)
    locomo.add_argument(
        "--embedder",
        choices=("auto", "none", "local"),
        default="auto",
        help="auto (default): local when installed, as `maas serve` does",
    )
    locomo.add_argument("--budgets", default="500,2000", help="token budgets, comma-separated")
    locomo.add_argument("--limit-conversations", type=int, default=None)
    locomo.add_argument("--concurrency", type=int, default=4)
    locomo.add_argument("--archive-timeout", type=float, default=600.0, help="seconds")
    locomo.add_argument(
        "--params",
        type=Path,
        default=None,
        help="JSON file of parameter overrides (the keys of MAAS_PARAMS), e.g. a shipped version",
    )
    locomo.add_argument(
        "--judge",
        action="store_true",
        help="also answer each question from the packed context with the configured LLM"
        " (MAAS_LLM_*) and score it with an LLM judge: J per category (METRICS.md §8)",
    )
    locomo.add_argument(
        "--snapshot",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the ingested database in DIR (embedded Postgres, or on MAAS_DATABASE_URL's"
        " server) for --replay",
    )
    locomo.add_argument(
        "--replay",
        type=Path,
        default=None,
        metavar="DIR",
        help="ask the questions on a copy of DIR's snapshot instead of ingesting again (other"
        " retrieval --params; archivist parameters and the embedder are the snapshot's)",
    )
    locomo.set_defaults(func=cmd_bench_locomo)


def _add_compare(bench: Any) -> None:
    compare = bench.add_parser(
        "compare",
        help="two `maas bench locomo --json` runs, question by question: what changed beyond"
        " noise (exact sign test per cell, Holm across the table)",
    )
    compare.add_argument("before", type=Path, help="`maas bench locomo --json` file")
    compare.add_argument("after", type=Path, help="`maas bench locomo --json` file")
    compare.add_argument(
        "--alpha", type=float, default=0.05, help="family-wise error of the verdicts"
    )
    compare.add_argument("--json", type=Path, default=None)
    compare.set_defaults(func=cmd_bench_compare)


def _add_load(bench: Any) -> None:
    load = bench.add_parser("load", help="many users and dialogs at once through the HTTP API")
    load.add_argument("--users", type=int, default=10)
    load.add_argument("--concurrency", type=int, default=50, help="concurrent dialogs")
    load.add_argument("--duration", type=float, default=30.0, help="seconds")
    load.add_argument("--llm-latency-ms", type=float, default=0.0, help="scripted LLM latency")
    load.add_argument("--workers", type=int, default=None, help="workers per stage")
    load.add_argument("--pool-max", type=int, default=None)
    load.add_argument("--json", type=Path, default=None)
    load.add_argument(
        "--two-tenant-seconds",
        type=float,
        default=10.0,
        help="seconds per two-tenant phase (a quiet tenant alone, then beside a flood); 0: none",
    )
    load.set_defaults(func=cmd_bench_load)


def register(sub: Any) -> None:
    """Add `bench` and its suites to maas's subcommands."""
    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="suite", required=True)
    _add_pipeline(bench)
    _add_locomo(bench)
    _add_compare(bench)
    _add_load(bench)
