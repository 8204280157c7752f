"""Small getters routes depend on: the runtime, the calling user, the admin check."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import Request

from maas.credentials import hash_key, same_key
from maas.db.queries import q
from maas.errors import Forbidden, Unauthorized
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


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    cookie = request.cookies.get("maas_key")  # set by the web UI's login form
    if cookie:
        return cookie
    raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")


async def current_user(request: Request) -> User:
    key = bearer(request)
    row = await runtime(request).pool.fetchrow(q("user_by_key_hash"), hash_key(key))
    if row is None:
        raise Unauthorized("unknown API key")
    return User(row["id"], row["name"])


async def require_admin(request: Request) -> None:
    key = bearer(request)
    admin = service(request).admin_key
    if admin is None or not same_key(key, admin):
        raise Forbidden("this route needs the admin key")
