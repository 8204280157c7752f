"""`/` and the login form: a valid API key (user or admin) opens a server-side session."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from maas.api.deps import runtime
from maas.api.identity import not_cross_site
from maas.api.limits import TokenBuckets, retry_after
from maas.credentials import credentials_path, stored_keys
from web.auth import close_session, identify, open_session, safe_next
from web.render import render
from web.routes.common import forbidden, form

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/chat", status_code=303)


def where_keys_are(request: Request) -> dict[str, str | bool | None]:
    """What the login page may promise: the admin key from MAAS_ADMIN_KEY or generated into the
    data directory, and the demo user's key only if the data directory holds one."""
    settings = runtime(request).settings
    path = credentials_path(settings.data_dir)
    stored = stored_keys(path)
    return {
        "admin_from_env": settings.admin_key is not None,
        "admin_file": str(path) if "admin_key" in stored else None,
        "demo_file": str(path) if "demo_user_key" in stored else None,
    }


def login_form(request: Request, target: str, error: str | None, status: int = 200) -> Response:
    keys = where_keys_are(request)
    return render(request, "pages/login.html", None, status, next=target, error=error, keys=keys)


@router.get("/ui/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    return login_form(request, safe_next(next), None)


def attempts(request: Request) -> TokenBuckets:
    """The app's login buckets by client address: a login presents no key to the API's rate
    limit, and each attempt is a key lookup (a 256-bit key cannot be guessed; the load can)."""
    state = request.app.state
    if not hasattr(state, "login_attempts"):
        settings = runtime(request).settings
        per_min = settings.login_attempts_per_min
        state.login_attempts = TokenBuckets(
            per_min, math.ceil(per_min), settings.rate_limit_buckets
        )
    buckets: TokenBuckets = state.login_attempts
    return buckets


@router.post("/ui/login")
async def login(request: Request) -> Response:
    fields = await form(request)
    target = safe_next(fields.get("next"))
    address = request.client.host if request.client else ""
    wait = attempts(request).take(address)
    if wait > 0:
        message = f"Too many login attempts from this address: try again in {retry_after(wait)} s."
        response = login_form(request, target, message, 429)
        response.headers["Retry-After"] = retry_after(wait)
        return response
    key = fields.get("api_key", "").strip()
    who = await identify(request, key) if key and not_cross_site(request.scope) else None
    if who is None:
        return login_form(request, target, "Unknown or revoked API key.", 401)
    response = RedirectResponse(target, status_code=303)
    await open_session(request, response, who, key)
    return response


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    """Ends the session server-side: a copy of the cookie is worthless afterwards."""
    if not not_cross_site(request.scope):
        return forbidden(request, None, "Cross-site form refused.")
    response = RedirectResponse("/ui/login", status_code=303)
    await close_session(request, response)
    return response
