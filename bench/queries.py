"""The benchmarks' own named SQL blocks (bench/*.sql), loaded once with maas's loader."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from maas.db.queries import load_queries

_HERE = Path(__file__).resolve().parent


@cache
def bench_queries() -> dict[str, str]:
    return load_queries(_HERE)


def bq(name: str) -> str:
    return bench_queries()[name]
