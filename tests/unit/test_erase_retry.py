"""Erasure retries a deadlock with the user's own in-flight work, and gives up after a bound."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from maas.api import users


async def test_erase_retries_a_deadlock_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    async def flaky(rt: Any, user_id: uuid.UUID) -> dict[str, int]:
        calls.append(1)
        if len(calls) < 3:
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return {"memories": 7}

    monkeypatch.setattr(users, "_erase_once", flaky)
    assert await users.erase(None, uuid.uuid4()) == {"memories": 7}  # type: ignore[arg-type]
    assert len(calls) == 3


async def test_erase_gives_up_after_its_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    async def stuck(rt: Any, user_id: uuid.UUID) -> dict[str, int]:
        calls.append(1)
        raise asyncpg.DeadlockDetectedError("deadlock detected")

    monkeypatch.setattr(users, "_erase_once", stuck)
    with pytest.raises(asyncpg.DeadlockDetectedError):
        await users.erase(None, uuid.uuid4())  # type: ignore[arg-type]
    assert len(calls) == users.ERASE_ATTEMPTS
