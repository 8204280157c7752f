"""The app with the selflearn extension mounted (sensor polling fast), on the test database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from maas.app import create_app
from selflearn.extension import extend
from selflearn.settings import SelflearnSettings
from tests.conftest import Api
from tests.conftest import test_settings as settings_for


@asynccontextmanager
async def running(
    db_url: str, tmp_path: Path, sensor: bool = True, sensor_poll_s: float = 0.3, **overrides: Any
) -> AsyncIterator[Api]:
    learn = SelflearnSettings(
        _env_file=None,  # type: ignore[call-arg]
        sensor=sensor,
        sensor_poll_s=sensor_poll_s,
        emulator_archive_timeout_s=30.0,
        # No concurrent control: with the default share one new thread in ten keeps the last
        # good version, and a test asking which version a new run got would fail at random
        # (tests/selflearn/test_monitor.py tests the control with its own settings).
        auto_rollback_control_share=0.0,
    )
    overrides.setdefault("rate_limit_per_min", 0)  # the tests poll the admin API freely
    app = create_app(
        settings_for(db_url, tmp_path, **overrides),
        extensions=[lambda h: extend(h, learn)],
    )
    manager = app.state.selflearn_manager
    manager.settings = manager.settings.model_copy(update={"unattended": False})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        # The emulator reaches MaaS through the same ASGI app, in-process (no socket in tests).
        app.state.selflearn_emulator.transport = transport
        async with httpx.AsyncClient(transport=transport, base_url="http://maas", timeout=60) as c:
            yield Api(app, c)


@pytest.fixture
def learn_api(db_url: str, tmp_path: Path) -> Callable[..., Any]:
    """`async with learn_api(sensor=True, **settings_overrides) as api:`"""

    def factory(**overrides: Any) -> Any:
        return running(db_url, tmp_path, **overrides)

    return factory


from tests.e2e.conftest import servers  # noqa: E402, F401 (the e2e test serves for real)
