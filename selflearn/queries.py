"""Named SQL blocks of the selflearn package (maas's loader reads only maas/**/*.sql)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from maas.db.queries import load_queries

_PACKAGE = Path(__file__).resolve().parent


@cache
def all_queries() -> dict[str, str]:
    return load_queries(_PACKAGE)


def q(name: str) -> str:
    return all_queries()[name]
