"""Who a request says it is: ONE parse of its headers, used by the rate limiter and by
authentication alike, so the identity that is limited is the identity that is served.

A request presents an API key (`Authorization: Bearer <key>`) or, from the web UI, a session
token in the `maas_session` cookie (a random token opened by the login form, never the key).
The header wins over the cookie; of several cookies with that name, the first counts (as the
limiter once took the first and authentication the last: `junk; real` bypassed the limit).

A cookie is sent by the browser on its own, so a cookie-authenticated request that changes
something must show it comes from our own pages (`Sec-Fetch-Site: same-origin`, or an `Origin`
equal to the `Host`): otherwise a same-site page could post to the API as the logged-in user.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import Scope

SESSION_COOKIE = "maas_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Credential:
    secret: str
    session: bool  # True: the cookie's session token; False: an API key from the header


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header (names are lower-case in ASGI)."""
    return next(_values(scope, name), None)


def _values(scope: Scope, name: bytes) -> Iterator[str]:
    for key, value in scope.get("headers", ()):
        if key == name:
            yield value.decode("latin-1")


def first_cookie(scope: Scope, name: str) -> str | None:
    """The first cookie of that name over every Cookie header (HTTP/2 may split them)."""
    for raw in _values(scope, b"cookie"):
        for part in raw.split(";"):
            key, _, value = part.strip().partition("=")
            if key == name and value:
                return value
    return None


def presented(scope: Scope) -> Credential | None:
    """The credential the request presents, if any: the bearer key first, else the session."""
    scheme, _, token = (header(scope, b"authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return Credential(token.strip(), session=False)
    session = first_cookie(scope, SESSION_COOKIE)
    return None if session is None else Credential(session, session=True)


def _origin_is_host(scope: Scope) -> bool | None:
    """None when the request names no origin."""
    origin = header(scope, b"origin")
    if origin is None:
        return None
    return urlsplit(origin).netloc == (header(scope, b"host") or "")


def from_our_pages(scope: Scope) -> bool:
    """Strict: the browser says the request came from this origin (Sec-Fetch-Site, else Origin).
    A request that says neither is refused: only a browser sends the cookie."""
    site = header(scope, b"sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    return _origin_is_host(scope) is True


def not_cross_site(scope: Scope) -> bool:
    """Lenient, for forms that carry no credential (login): refuse only what a browser marks as
    coming from elsewhere; a client that is no browser (curl, tests) says nothing."""
    site = header(scope, b"sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    return _origin_is_host(scope) is not False


def cookie_may_act(scope: Scope, credential: Credential) -> bool:
    """A session cookie may change something only from our own pages; reads and keys always."""
    if not credential.session or scope.get("method", "GET") in SAFE_METHODS:
        return True
    return from_our_pages(scope)
