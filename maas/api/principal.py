"""Routes open to a user key and to the admin key: who is calling."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import Request

from maas.api.deps import bearer, current_user, service
from maas.credentials import same_key


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID | None  # None: the admin key

    @property
    def admin(self) -> bool:
        return self.user_id is None


async def principal(request: Request) -> Principal:
    """The admin key (constant-time compare) or a user key; anything else is 401."""
    admin = service(request).admin_key
    if admin is not None and same_key(bearer(request), admin):
        return Principal(None)
    return Principal((await current_user(request)).id)
