"""`/` and the login form: a valid API key (user or admin) opens a server-side session."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from maas.api.identity import not_cross_site
from web.auth import close_session, identify, open_session, safe_next
from web.render import render
from web.routes.common import forbidden, form

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/chat", status_code=303)


@router.get("/ui/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "pages/login.html", None, next=safe_next(next), error=None)


@router.post("/ui/login")
async def login(request: Request) -> Response:
    fields = await form(request)
    target = safe_next(fields.get("next"))
    key = fields.get("api_key", "").strip()
    who = await identify(request, key) if key and not_cross_site(request.scope) else None
    if who is None:
        error = "Unknown or revoked API key."
        return render(request, "pages/login.html", None, 401, next=target, error=error)
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
