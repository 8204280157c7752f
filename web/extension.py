"""Entry point (group maas.extensions): mounts this package on the app; maas never imports it."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from maas.api import errors
from maas.host import ExtensionHost
from web.auth import CrossSite, LoginRequired, ReadOnly, login_redirect, viewer, viewer_or_none
from web.render import render
from web.routes import chat, dashboard, login, memories, runs, testruns
from web.routes.common import BadForm

STATIC = Path(__file__).resolve().parent / "static"


async def _read_only(request: Request, exc: Exception) -> Response:
    who = await viewer(request)
    return render(request, "pages/error.html", who, 403, title="Read-only", message=str(exc))


async def _cross_site(request: Request, exc: Exception) -> Response:
    """A cookie-authenticated form from another site (maas.api.identity refused it)."""
    return render(request, "pages/error.html", None, 403, title="Not allowed", message=str(exc))


async def _bad_form(request: Request, exc: Exception) -> Response:
    return render(request, "pages/error.html", None, 400, title="Bad form", message=str(exc))


async def _invalid(request: Request, exc: Exception) -> Response:
    """A malformed id or parameter in a page's address gets a page; the API keeps its JSON."""
    if not request.url.path.startswith("/ui/"):
        return await errors.on_invalid(request, exc)
    message = "This address is malformed: a bad id or parameter."
    who = await viewer_or_none(request)
    return render(request, "pages/error.html", who, 400, title="Bad address", message=message)


TITLES = {404: "Not found", 405: "Not allowed"}


async def _http(request: Request, exc: Exception) -> Response:
    """An unknown /ui address (or a form target fetched with GET) gets a page; the API keeps its
    JSON errors."""
    assert isinstance(exc, StarletteHTTPException)
    if not request.url.path.startswith("/ui/"):
        return await errors.on_http(request, exc)
    title = TITLES.get(exc.status_code, "Error")
    message = (
        "There is no page at this address."
        if exc.status_code == 404
        else f"This address does not answer that request ({exc.detail})."
    )
    who = await viewer_or_none(request)
    return render(request, "pages/error.html", who, exc.status_code, title=title, message=message)


def extend(host: ExtensionHost) -> None:
    """Pages under /ui (and `/`), static files under /ui/static; a page reaches the service
    through the API's request context, as the API's routes do."""
    app = host.app
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    for module in (login, chat, runs, memories, testruns, dashboard):
        host.add_router(module.router)
    app.add_exception_handler(LoginRequired, login_redirect)
    app.add_exception_handler(ReadOnly, _read_only)
    app.add_exception_handler(CrossSite, _cross_site)
    app.add_exception_handler(BadForm, _bad_form)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
