"""Small getters routes depend on: the runtime, the calling user, the admin check."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import Request

from maas.credentials import hash_key, same_key
from maas.db.queries import q
from maas.errors import UNKNOWN_KEY, Forbidden, Unauthorized
from maas.runtime.context import Runtime
from maas.service import Service


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    name: str


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def runtime(request: Request) -> Runtime:
    rt = service(request).runtime
    assert rt is not None
    return rt


# For Depends: FastAPI runs a sync dependency in its thread pool (two thread hand-offs and a
# GIL tussle per request), an async one inline. service() and runtime() stay sync for direct calls.
async def get_service(request: Request) -> Service:
    return service(request)


async def get_runtime(request: Request) -> Runtime:
    return runtime(request)


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    cookie = request.cookies.get("maas_key")  # set by the web UI's login form
    if cookie:
        return cookie
    raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")


async def _user_by_key(request: Request, key: str) -> User | None:
    """Keys are stored as sha256; the lookup is by hash, so no key is ever compared in SQL."""
    row = await runtime(request).pool.fetchrow(q("user_by_key_hash"), hash_key(key))
    return None if row is None else User(row["id"], row["name"])


async def caller_key(request: Request) -> str:
    """The caller's API key as stored (sha256), not yet checked: a statement that needs the user
    authenticates it itself (maas.pipeline.submit), saving a round trip on the hot path."""
    return hash_key(bearer(request))


async def current_user(request: Request) -> User:
    user = await _user_by_key(request, bearer(request))
    if user is None:
        raise Unauthorized(UNKNOWN_KEY)
    return user


async def require_admin(request: Request) -> None:
    """The admin key passes (constant-time compare); a user key is 403, anything else 401."""
    key = bearer(request)
    admin = service(request).admin_key
    if admin is not None and same_key(key, admin):
        return
    if await _user_by_key(request, key) is None:
        raise Unauthorized(UNKNOWN_KEY)
    raise Forbidden("this route needs the admin key")
