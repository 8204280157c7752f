"""The one mapping from errors to HTTP responses."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import asyncpg
from asyncpg.exceptions._base import DataError as ClientDataError
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from maas.errors import MaasError

log = logging.getLogger(__name__)

# The database is away or overloaded: say so quickly instead of hanging or answering 500.
UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
    asyncpg.exceptions.InterfaceError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


# The OpenAI-compatible routes (maas/api/openai_compat.py) answer errors as OpenAI does: the same
# body plus `type` and `param`, and 400 for a request that does not validate.
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")
OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error"}
OPENAI_TYPES |= {404: "not_found_error", 409: "conflict_error", 429: "rate_limit_error"}


def reply(
    request: Request, payload: dict[str, Any], status: int, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    if request.url.path.startswith(OPENAI_PATHS):
        status = 400 if status == 422 else status
        kind = OPENAI_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
        payload["error"] |= {"type": kind, "param": None}
    return JSONResponse(payload, status_code=status, headers=headers)


async def on_maas_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MaasError)
    return reply(request, body(exc.code, exc.message), exc.status_code)


async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc)
    payload = body("unavailable", "database unavailable, retry shortly")
    return reply(request, payload, 503, {"Retry-After": "2"})


async def on_bad_value(request: Request, exc: Exception) -> JSONResponse:
    """A value the database refused (out of range, unstorable text) that validation missed."""
    log.warning("bad value in %s %s: %s", request.method, request.url.path, exc)
    message = f"invalid input: {str(exc).splitlines()[0][:200]}"
    return reply(request, body("invalid_input", message), 422)


async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 in the same shape as every other error, with each field's problem spelled out."""
    assert isinstance(exc, RequestValidationError)
    problems = [
        f"{_where(e.get('loc', ()))}: {CLEARER.get(e.get('type', ''), e.get('msg'))}"
        for e in exc.errors()
    ]
    payload: dict[str, Any] = body("invalid_request", "; ".join(problems) or "invalid request")
    payload["error"]["details"] = _echoable(jsonable_encoder(exc.errors()))
    return reply(request, payload, 422)


# pydantic's words where they do not say what is wrong with the text
CLEARER = {
    "string_unicode": "not valid Unicode text (a lone surrogate such as \\ud800, or bad UTF-8)"
}


def _where(loc: tuple[Any, ...]) -> str:
    """A field's path as a client wrote it ("messages.0.content"), without pydantic's validator
    steps ("function-after[…]") or a union's branch ("list[ContentPart]") added to it."""
    steps = [str(p) for p in loc if p != "body" and "[" not in str(p)]
    return ".".join(steps) or "body"


ECHO_CHARS = 200  # of a bad input's text echoed in the details


def _echoable(value: Any) -> Any:
    """The details as JSON can carry them: a body of `NaN` or `Infinity` (Python's json reads
    both) as its name, not a 500 from the encoder; a lone surrogate as "?", not an encoding
    error that hid the field's problem; a long input cut to ECHO_CHARS, not echoed whole."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str):  # a lone surrogate (refused as input) cannot be encoded back
        cut = value if len(value) <= ECHO_CHARS else value[:ECHO_CHARS] + "…"
        return cut.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {k: _echoable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_echoable(v) for v in value]
    return value


async def on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 408: "timeout", 413: "too_large"}.get(
        exc.status_code, f"http_{exc.status_code}"
    )
    return reply(request, body(code, str(exc.detail)), exc.status_code, exc.headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(MaasError, on_maas_error)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(StarletteHTTPException, on_http)
    # asyncpg's client-side DataError is also an InterfaceError: registered here, it wins.
    for bad in (asyncpg.exceptions.DataError, ClientDataError, UnicodeEncodeError, OverflowError):
        app.add_exception_handler(bad, on_bad_value)
    for exc_type in UNAVAILABLE:
        app.add_exception_handler(exc_type, on_unavailable)
