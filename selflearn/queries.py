"""Named SQL blocks of the selflearn package (maas's loader reads only maas/**/*.sql)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from maas.db.queries import parse_sql

_PACKAGE = Path(__file__).resolve().parent


@cache
def all_queries() -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted(_PACKAGE.rglob("*.sql")):
        for name, sql in parse_sql(path.read_text()).items():
            if name in merged:
                raise ValueError(f"query {name!r} defined twice (second in {path})")
            merged[name] = sql
    return merged


def q(name: str) -> str:
    return all_queries()[name]
