"""Named SQL blocks (`-- name: x`) loaded once from the .sql files of the maas package."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_NAME = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_PACKAGE = Path(__file__).resolve().parent.parent


def parse_sql(text: str) -> dict[str, str]:
    """Split a file into {name: sql}; text before the first name marker is a file comment."""
    parts = _NAME.split(text)
    blocks: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in blocks:
            raise ValueError(f"duplicate query name {name!r}")
        blocks[name] = body.strip().rstrip(";")
    return blocks


def load_queries(package: Path) -> dict[str, str]:
    """Every named block of the package's .sql files (migrations excluded); a name used twice is
    an error naming the second file. Extensions (selflearn, web) load theirs with it too."""
    merged: dict[str, str] = {}
    for path in sorted(package.rglob("*.sql")):
        if {"migrations", "_migrations"} & set(path.parts):
            continue
        for name, sql in parse_sql(path.read_text()).items():
            if name in merged:
                raise ValueError(f"query {name!r} defined twice (second in {path})")
            merged[name] = sql
    return merged


@cache
def all_queries() -> dict[str, str]:
    return load_queries(_PACKAGE)


def q(name: str) -> str:
    return all_queries()[name]
