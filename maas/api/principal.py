"""Routes open to a user key and to the admin key: who is calling."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import Request

from maas.api.deps import caller_key, is_admin_hash, user_by_hash
from maas.errors import UNKNOWN_KEY, Unauthorized


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID | None  # None: the admin key

    @property
    def admin(self) -> bool:
        return self.user_id is None


async def principal(request: Request) -> Principal:
    """The admin key (constant-time compare) or a user key; anything else is 401."""
    key_hash = await caller_key(request)
    if is_admin_hash(request, key_hash):
        return Principal(None)
    user = await user_by_hash(request, key_hash)
    if user is None:
        raise Unauthorized(UNKNOWN_KEY)
    return Principal(user.id)
