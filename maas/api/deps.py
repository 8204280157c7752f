"""Small getters routes depend on: the runtime, the calling user, the admin check."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass

from fastapi import Request

from maas.api.context import ApiContext
from maas.api.identity import Credential, cookie_may_act, presented
from maas.credentials import hash_key
from maas.db.queries import q
from maas.errors import UNKNOWN_KEY, Forbidden, Unauthorized
from maas.runtime.context import Runtime


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    name: str


def api(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.api  # set when the service has started
    return ctx


def runtime(request: Request) -> Runtime:
    return api(request).runtime


# For Depends: FastAPI runs a sync dependency in its thread pool (two thread hand-offs and a
# GIL tussle per request), an async one inline. api() and runtime() stay sync for direct calls.
async def get_api(request: Request) -> ApiContext:
    return api(request)


async def get_runtime(request: Request) -> Runtime:
    return runtime(request)


def credential(request: Request) -> Credential:
    """What the caller presents (maas.api.identity: the limiter's parse too); a session cookie
    that would change something from another site is refused."""
    found = presented(request.scope)
    if found is None:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    if not cookie_may_act(request.scope, found):
        raise Forbidden("cross-site request refused: the session cookie acts only from this site")
    return found


async def caller_key(request: Request) -> str:
    """The caller's API key as stored (sha256): the bearer key's, or that of the key behind a live
    session. Not yet checked against the users: a statement that needs the user authenticates it
    itself (maas.pipeline.submit), saving a round trip on the hot path."""
    found = credential(request)
    if not found.session:
        return hash_key(found.secret)
    key_hash: str | None = await runtime(request).pool.fetchval(
        q("session_key_hash"), hash_key(found.secret)
    )
    if key_hash is None:
        raise Unauthorized("session expired or logged out: log in again")
    return key_hash


def is_admin_hash(request: Request, key_hash: str) -> bool:
    """Is this the admin key's hash (constant-time compare)?"""
    admin = api(request).admin_key
    return admin is not None and hmac.compare_digest(key_hash, hash_key(admin))


async def user_by_hash(request: Request, key_hash: str) -> User | None:
    """Keys are stored as sha256; the lookup is by hash, so no key is ever compared in SQL. A
    revoked key finds nobody."""
    row = await runtime(request).pool.fetchrow(q("user_by_key_hash"), key_hash)
    return None if row is None else User(row["id"], row["name"])


async def current_user(request: Request) -> User:
    user = await user_by_hash(request, await caller_key(request))
    if user is None:
        raise Unauthorized(UNKNOWN_KEY)
    return user


async def require_admin(request: Request) -> None:
    """The admin key passes; a user key is 403, anything else 401."""
    key_hash = await caller_key(request)
    if is_admin_hash(request, key_hash):
        return
    if await user_by_hash(request, key_hash) is None:
        raise Unauthorized(UNKNOWN_KEY)
    raise Forbidden("this route needs the admin key")
