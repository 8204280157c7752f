"""The app with self-learning mounted and the Manager tuned for tests (small batches, fast
heartbeats, parameters re-read quickly), in-process (ASGI), on the test database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from maas.app import create_app
from selflearn.extension import extend
from selflearn.manager.settings import ManagerSettings
from selflearn.settings import SelflearnSettings
from tests.conftest import ADMIN_KEY, Api
from tests.conftest import test_settings as settings_for
from tests.helpers import eventually

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
BASE = "/v1/selflearn"
BROKEN = {"retrieval.min_score": 5.0}  # every candidate scores below it: nothing is retrieved
FIXED = {"retrieval.min_score": 0.05}  # the default again


def learn_settings(**overrides: Any) -> SelflearnSettings:
    values: dict[str, Any] = {
        "sensor_poll_s": 0.3,
        "params_poll_s": 0.2,
        "emulator_archive_timeout_s": 30.0,
        "auto_rollback": False,
    }
    values.update(overrides)
    return SelflearnSettings(_env_file=None, **values)  # type: ignore[call-arg]


def manager_settings(**overrides: Any) -> ManagerSettings:
    values: dict[str, Any] = {
        "heartbeat_s": 0.2,
        "recover_s": 0.3,
        "lease_s": 5.0,
        "macro_dialogs": 30,  # 8 scenarios: a sure effect can reach 1/256 < α/2
        "micro_dialogs": 6,
        "trial_dialogs": 6,
        "deep_confirm_dialogs": 30,
        "concurrency": 4,
        "min_sample": 2,
        "bootstrap_resamples": 200,
        "plan_dialogs": False,  # the tests size their experiments themselves
        "remeasure_dialogs": 3,
        # replay cycles on small worlds; no unattended cycles unless a test asks for them
        "world_users": 2,
        "world_sessions": 4,
        "world_turns": 40,
        "search_questions": 12,
        "unattended": False,
    }
    values.update(overrides)
    return ManagerSettings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def managed(
    db_url: str, tmp_path: Path, manager: dict[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[Api]:
    learn = learn_settings()
    overrides.setdefault("rate_limit_per_min", 0)  # the tests poll the admin API freely
    app = create_app(
        settings_for(db_url, tmp_path, **overrides),
        extensions=[lambda h: extend(h, learn)],
    )
    app.state.selflearn_manager.settings = manager_settings(**(manager or {}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        app.state.selflearn_emulator.transport = transport
        async with httpx.AsyncClient(
            transport=transport, base_url="http://maas", timeout=60, headers=ADMIN
        ) as c:
            yield Api(app, c)


async def activate(client: httpx.AsyncClient, params: dict[str, Any], reason: str) -> int:
    """Store a version with `params` over the parameters in force and make it active."""
    body = {"params": params, "reason": reason, "who": "test"}
    resp = await client.post(f"{BASE}/parameters/versions", json=body)
    assert resp.status_code == 201, resp.text
    version: int = resp.json()["version"]
    resp = await client.post(
        f"{BASE}/parameters/activate", json={"version": version, "reason": reason}
    )
    assert resp.status_code == 200, resp.text
    return version


async def goal(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "find something", "metric": "found_anything_rate", "target": 0.8}
    body.update(fields)
    resp = await client.post(f"{BASE}/goals", json=body)
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = resp.json()
    return made


async def ended(client: httpx.AsyncClient, cycle_id: str, timeout: float = 150) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        view: dict[str, Any] = (await client.get(f"{BASE}/cycles/{cycle_id}")).json()
        return None if view["status"] == "running" else view

    result: dict[str, Any] = await eventually(check, timeout)
    return result
