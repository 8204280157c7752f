"""One error root; maas.api.errors maps each subclass to an HTTP status."""

from __future__ import annotations


class MaasError(Exception):
    status_code = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(MaasError):
    status_code = 404
    code = "not_found"


class Unauthorized(MaasError):
    status_code = 401
    code = "unauthorized"


UNKNOWN_KEY = "unknown or revoked API key"


class Forbidden(MaasError):
    status_code = 403
    code = "forbidden"


class BadRequest(MaasError):
    status_code = 400
    code = "bad_request"


class Gone(MaasError):
    status_code = 410
    code = "gone"


class Conflict(MaasError):
    status_code = 409
    code = "conflict"


class StageError(MaasError):
    """A pipeline stage failed; the runner retries it with backoff up to max_attempts, unless the
    failure is permanent (e.g. the LLM refused our credentials): retrying cannot help."""

    code = "stage_failed"

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class LLMError(StageError):
    code = "llm_failed"
