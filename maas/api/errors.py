"""The one mapping from errors to HTTP responses."""

from __future__ import annotations

import logging

import asyncpg
from asyncpg.exceptions._base import DataError as ClientDataError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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


async def on_maas_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MaasError)
    return JSONResponse(body(exc.code, exc.message), status_code=exc.status_code)


async def on_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable during %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        body("unavailable", "database unavailable, retry shortly"),
        status_code=503,
        headers={"Retry-After": "2"},
    )


async def on_bad_value(request: Request, exc: Exception) -> JSONResponse:
    """A value the database refused (out of range, unstorable text) that validation missed."""
    log.warning("bad value in %s %s: %s", request.method, request.url.path, exc)
    message = f"invalid input: {str(exc).splitlines()[0][:200]}"
    return JSONResponse(body("invalid_input", message), status_code=422)


def install(app: FastAPI) -> None:
    app.add_exception_handler(MaasError, on_maas_error)
    # asyncpg's client-side DataError is also an InterfaceError: registered here, it wins.
    for bad in (asyncpg.exceptions.DataError, ClientDataError, UnicodeEncodeError, OverflowError):
        app.add_exception_handler(bad, on_bad_value)
    for exc_type in UNAVAILABLE:
        app.add_exception_handler(exc_type, on_unavailable)
