"""Text that Postgres can store: no NUL characters, no lone surrogates (422 with a reason)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL (U+0000) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode: lone surrogate characters are not") from exc
    return value


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("text must not be empty or only whitespace")
    return value


Text = Annotated[str, AfterValidator(storable)]
NonBlank = Annotated[str, AfterValidator(storable), AfterValidator(not_blank)]
BIGINT_MAX = 2**63 - 1
