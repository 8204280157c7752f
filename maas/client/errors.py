"""Typed exceptions carrying the API's `{"error": {"code", "message"}}`."""

from __future__ import annotations

from typing import Any


class MaaSError(Exception):
    """A reply the API refused: `status` (HTTP), `code` and `message` (its error body)."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class InvalidRequestError(MaaSError):
    """400, 408, 413, 422: the request itself is wrong (the message says which field)."""


class AuthenticationError(MaaSError):
    """401: missing, unknown or revoked key."""


class PermissionDeniedError(MaaSError):
    """403."""


class NotFoundError(MaaSError):
    """404: not there, or not the caller's."""


class ConflictError(MaaSError):
    """409."""


class GoneError(MaaSError):
    """410: the account was erased meanwhile."""


class RateLimitError(MaaSError):
    """429 after the client's retries."""


class UnavailableError(MaaSError):
    """503 after the client's retries."""


class ServerError(MaaSError):
    """Any other 5xx."""


class ConnectionFailed(MaaSError):
    """The server could not be reached (status 0)."""


BY_STATUS: dict[int, type[MaaSError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: InvalidRequestError,
    409: ConflictError,
    410: GoneError,
    413: InvalidRequestError,
    422: InvalidRequestError,
    429: RateLimitError,
    503: UnavailableError,
}


def error_for(status: int, body: Any) -> MaaSError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"code": f"http_{status}", "message": str(body)[:500]}
    kind = BY_STATUS.get(status, ServerError if status >= 500 else MaaSError)
    return kind(status, str(error.get("code")), str(error.get("message")), body)
