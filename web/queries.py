"""The web UI's own named SQL blocks (web/*.sql), loaded once; maas's loader only reads maas/."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from maas.db.queries import load_queries

_HERE = Path(__file__).resolve().parent


@cache
def web_queries() -> dict[str, str]:
    return load_queries(_HERE)


def wq(name: str) -> str:
    return web_queries()[name]
