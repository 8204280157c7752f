"""`/` and the login form: a valid API key (user or admin) becomes the session cookie."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from web.auth import COOKIE, identify, safe_next, same_origin, set_session
from web.render import render
from web.routes.common import form

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
    who = await identify(request, key) if key and same_origin(request) else None
    if who is None:
        error = "Unknown or revoked API key."
        return render(request, "pages/login.html", None, 401, next=target, error=error)
    response = RedirectResponse(target, status_code=303)
    set_session(response, request, key)
    return response


@router.post("/ui/logout")
async def logout() -> RedirectResponse:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
