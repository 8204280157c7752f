"""Who is looking: a user (by API key) or the admin key (read-only, every user's runs).

The key comes from `Authorization: Bearer` or the `maas_key` cookie set by the login form
(HttpOnly, SameSite=Strict: another site can neither read it nor make the browser send it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from maas.api.deps import User, bearer, runtime, service
from maas.credentials import hash_key, same_key
from maas.db.queries import q
from maas.errors import Unauthorized

COOKIE = "maas_key"


@dataclass(frozen=True)
class Viewer:
    user: User | None  # None: the admin key
    name: str

    @property
    def admin(self) -> bool:
        return self.user is None

    @property
    def owner(self) -> uuid.UUID | None:
        """The owner filter of read queries: null lets the admin read any owner's rows."""
        return None if self.user is None else self.user.id


class LoginRequired(Exception):
    """Raised by pages without a valid key; answered with a redirect to the login form."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class ReadOnly(Exception):
    """The admin key on a page that acts for a user (chat, memories): answered with a 403 page."""


async def identify(request: Request, key: str) -> Viewer | None:
    admin = service(request).admin_key
    if admin is not None and same_key(key, admin):
        return Viewer(None, "admin")
    row = await runtime(request).pool.fetchrow(q("user_by_key_hash"), hash_key(key))
    return None if row is None else Viewer(User(row["id"], row["name"]), row["name"])


async def viewer(request: Request) -> Viewer:
    """Page dependency: the viewer, or a redirect to the login form (via LoginRequired)."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        key = bearer(request)
    except Unauthorized:
        raise LoginRequired(here) from None
    found = await identify(request, key)
    if found is None:
        raise LoginRequired(here)
    return found


async def user_viewer(request: Request) -> Viewer:
    """Pages that write (chat, memories) need a user: the admin key is read-only."""
    found = await viewer(request)
    if found.user is None:
        raise ReadOnly("the admin key is read-only here: log in with a user key to do this")
    return found


async def login_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    response = RedirectResponse(f"/ui/login?next={quote(exc.next_path, safe='/')}", 303)
    if request.cookies.get(COOKIE):  # a revoked or stale key: forget it
        response.delete_cookie(COOKIE, path="/")
    return response


def safe_next(value: str | None) -> str:
    """Only our own pages: no scheme, no host, no `//evil` (an open redirect otherwise)."""
    if not value or not value.startswith("/ui/") or value.startswith("//"):
        return "/ui/chat"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value:
        return "/ui/chat"
    return value


def same_origin(request: Request) -> bool:
    """A form POST from another origin is refused (defence in depth beside SameSite=Strict)."""
    origin = request.headers.get("origin")
    if origin is None:  # not a browser form (curl, tests): nothing to forge
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def set_session(response: Response, request: Request, key: str) -> None:
    response.set_cookie(
        COOKIE,
        key,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=7 * 24 * 3600,
    )
