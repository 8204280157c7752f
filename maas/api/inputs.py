"""Request fields: text that Postgres can store (no NUL characters, no lone surrogates), and
numbers and flags of their own JSON type (422 with a reason)."""

from __future__ import annotations

from typing import Annotated

from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, Strict

HARD_MAX_CHARS = 100_000  # the schema's cap; the configured limit (settings) is checked in routes


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
# JSON numbers and booleans as themselves: pydantic's lax mode reads `true` as 1 and "5" or 5.0
# as 5, so `"max_tokens": true` asked for one token. A float accepts an integer, as JSON does.
Int = Annotated[int, Strict()]
Number = Annotated[float, Strict()]
Flag = Annotated[bool, Strict()]


def within(value: str, limit: int, field: str) -> None:
    """422 in FastAPI's own shape when text is over the configured limit."""
    if len(value) > limit:
        error = {
            "type": "string_too_long",
            "loc": ("body", field),
            "msg": f"String should have at most {limit} characters (MAAS_MAX_MESSAGE_CHARS)",
            "input": None,
            "ctx": {"max_length": limit},
        }
        raise RequestValidationError([error])
