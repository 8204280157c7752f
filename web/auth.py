"""Who is looking: a user or the admin key (read-only, every user's runs), by a server-side
session or an API key.

The login form exchanges a key for a session: a random token in the `maas_session` cookie
(HttpOnly, SameSite=Strict), stored only as its sha256 in maas.sessions, expiring after
MAAS_SESSION_HOURS, ended by logout, by revoking the key, by a new admin key and by erasure. The
cookie never holds the key. Pages and the /v1 API read it through the same parse
(maas.api.identity), which also refuses a cookie that would act from another site."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from maas.api.deps import User, caller_key, is_admin_hash, runtime, user_by_hash
from maas.api.identity import SESSION_COOKIE, first_cookie
from maas.credentials import hash_key
from maas.db.queries import q
from maas.errors import Forbidden, Unauthorized

COOKIE = SESSION_COOKIE
LEGACY_COOKIE = "maas_key"  # the raw key, as the cookie held it before sessions: dropped


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


class CrossSite(Exception):
    """A session cookie on a form posted from another site: answered with a 403 page."""


async def viewer_for(request: Request, key_hash: str) -> Viewer | None:
    """The viewer a key (by its sha256) stands for: the admin, a user, or nobody."""
    if is_admin_hash(request, key_hash):
        return Viewer(None, "admin")
    user = await user_by_hash(request, key_hash)
    return None if user is None else Viewer(user, user.name)


async def identify(request: Request, key: str) -> Viewer | None:
    return await viewer_for(request, hash_key(key))


async def viewer(request: Request) -> Viewer:
    """Page dependency: the viewer, or a redirect to the login form (via LoginRequired)."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    try:
        key_hash = await caller_key(request)
    except Unauthorized:
        raise LoginRequired(here) from None
    except Forbidden as refused:
        raise CrossSite(refused.message) from None
    found = await viewer_for(request, key_hash)
    if found is None:
        raise LoginRequired(here)
    return found


async def viewer_or_none(request: Request) -> Viewer | None:
    """The viewer if the request carries a valid session or key, else None (error pages)."""
    try:
        return await viewer(request)
    except (LoginRequired, CrossSite):
        return None


async def user_viewer(request: Request) -> Viewer:
    """Pages that write (chat, memories) need a user: the admin key is read-only."""
    found = await viewer(request)
    if found.user is None:
        raise ReadOnly("the admin key is read-only here: log in with a user key to do this")
    return found


async def login_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    response = RedirectResponse(f"/ui/login?next={quote(exc.next_path, safe='/')}", 303)
    if first_cookie(request.scope, COOKIE) or first_cookie(request.scope, LEGACY_COOKIE):
        forget(response)  # an expired, ended or stale session
    return response


def safe_next(value: str | None) -> str:
    """Only our own pages: no scheme, no host, no `//evil` (an open redirect otherwise)."""
    if not value or not value.startswith("/ui/") or value.startswith("//"):
        return "/ui/chat"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value:
        return "/ui/chat"
    return value


async def open_session(request: Request, response: Response, who: Viewer, key: str) -> None:
    """A new session for the key that just logged in, its token in the cookie."""
    token = secrets.token_urlsafe(32)
    ttl_s = runtime(request).settings.session_hours * 3600
    await runtime(request).pool.execute(
        q("open_session"), hash_key(token), who.owner, hash_key(key), ttl_s
    )
    response.delete_cookie(LEGACY_COOKIE, path="/")
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=int(ttl_s),
    )


async def close_session(request: Request, response: Response) -> None:
    """Logout: the session row goes, so the token is worthless even if it was copied."""
    token = first_cookie(request.scope, COOKIE)
    if token is not None:
        await runtime(request).pool.execute(q("close_session"), hash_key(token))
    forget(response)


def forget(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/")
    response.delete_cookie(LEGACY_COOKIE, path="/")
