"""The web UI's own named SQL blocks (web/*.sql), loaded once; maas's loader only reads maas/."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from maas.db.queries import parse_sql

_HERE = Path(__file__).resolve().parent


@cache
def web_queries() -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted(_HERE.glob("*.sql")):
        merged |= parse_sql(path.read_text())
    return merged


def wq(name: str) -> str:
    return web_queries()[name]
