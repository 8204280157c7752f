"""The composition root: the demo user with a configured admin key, the embedder loaded before the
first request, extensions reached through their host, and the one listener's run notifications."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from maas.app import create_app
from maas.host import ExtensionHost
from tests.conftest import running_api
from tests.conftest import test_settings as settings_for
from tests.helpers import eventually


async def test_with_an_admin_key_the_demo_user_is_still_made_and_its_key_printed(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The login page offers "the demo key printed at first start", MAAS_ADMIN_KEY or not."""
    async with running_api(settings_for(db_url, tmp_path)) as api:  # admin key configured
        creds = json.loads((tmp_path / "credentials.json").read_text())
        assert set(creds) == {"demo_user_key"}  # the configured admin key is not written down
        printed = capsys.readouterr().out
        assert f"demo user key: {creds['demo_user_key']}" in printed and "admin key:" not in printed
        auth = {"Authorization": f"Bearer {creds['demo_user_key']}"}
        me = await api.client.get("/v1/users/me", headers=auth)
        assert me.status_code == 200 and me.json()["name"] == "demo"
    async with running_api(settings_for(db_url, tmp_path)):  # a restart reuses it
        assert json.loads((tmp_path / "credentials.json").read_text()) == creds
        assert "reusing" in capsys.readouterr().out


class Heard:
    """A run subscriber, as an extension registers one."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, str]] = []
        self.lost = 0

    def on_run(self, status: str, run_id: str) -> None:
        self.runs.append((status, run_id))

    def on_lost(self) -> None:
        self.lost += 1


async def test_an_extension_hears_runs_through_the_one_listener_and_gets_its_host(
    db_url: str, tmp_path: Path
) -> None:
    heard, hosts, ticks = Heard(), [], asyncio.Event()

    async def task(stop: asyncio.Event) -> None:
        ticks.set()
        await stop.wait()

    def extend(host: ExtensionHost) -> None:
        hosts.append(host)
        host.subscribe_runs(heard)
        host.add_task("probe-task", task)
        with pytest.raises(RuntimeError, match="not started"):
            host.pool  # noqa: B018 (nothing exists before the service starts)

    app = create_app(settings_for(db_url, tmp_path), extensions=[extend])
    async with app.router.lifespan_context(app):
        host = hosts[0]
        await asyncio.wait_for(ticks.wait(), 5)
        assert heard.lost >= 1  # the listener's first connect: "look again"
        assert await host.pool.fetchval("SELECT 1") == 1 and host.admin_key
        assert (await host.active_params()).version == "builtin"
        run_id = uuid.uuid4()
        await host.pool.execute("SELECT pg_notify('maas_runs', $1)", f"COMPLETED:{run_id}")
        await eventually(lambda: _async(("COMPLETED", str(run_id)) in heard.runs), 5)
        listeners = await host.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name IN ('maas-listener', 'selflearn-sensor')"
        )
        assert listeners == 1  # the process's own listener, nobody else's


async def _async(value: Any) -> Any:
    return value
