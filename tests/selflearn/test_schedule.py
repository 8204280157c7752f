"""Unattended learning: on by default, scheduled micro and learning cycles with fresh seeds,
within a budget (emulator runs per day, live traffic, CPU share), visible in /health, the
schedule route and the cycle list; a setting turns it off."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from selflearn.manager.settings import ManagerSettings
from tests.conftest import ADMIN_KEY
from tests.helpers import eventually
from tests.selflearn.manager_helpers import BASE, goal, managed

FAST = {"unattended": True, "schedule_micro_s": 0.3, "schedule_learn_s": 0.6,
        "schedule_learn_kind": "macro", "recover_s": 0.2, "max_cpu_share": 1.0}  # fmt: skip


def test_unattended_learning_is_on_by_default_with_a_stated_budget() -> None:
    cfg = ManagerSettings(_env_file=None)  # type: ignore[call-arg]
    assert cfg.unattended is True
    assert cfg.schedule_micro_s == 3600 and cfg.schedule_learn_s == 6 * 3600
    assert cfg.schedule_learn_kind == "deep"
    assert 0 < cfg.max_cpu_share <= 0.25 and cfg.max_runs_per_day > 0
    assert cfg.pause_live_runs_per_min > 0


async def _scheduled(c: Any) -> list[dict[str, Any]]:
    cycles: list[dict[str, Any]] = (await c.get(f"{BASE}/cycles")).json()
    return [x for x in cycles if x["requested_by"] == "schedule"]


async def test_scheduled_cycles_run_with_fresh_seeds_and_show_in_health(
    db_url: str, tmp_path: Path
) -> None:
    async with managed(db_url, tmp_path, manager=FAST) as api:
        c = api.client
        garden = json.loads((Path(__file__).parents[1] / "data/corpus/garden-1.json").read_text())
        digest = (await c.post(f"{BASE}/conversations", json=garden)).json()["hash"]
        made = await goal(c, metric="budget_recall", target=0.99)

        async def both() -> list[dict[str, Any]] | None:
            done = [x for x in await _scheduled(c) if x["status"] != "running"]
            kinds = {x["kind"] for x in done}
            return done if {"micro", "macro"} <= kinds else None

        done = await eventually(both, 240)
        assert all(x["status"] == "done" for x in done), done
        health = (await c.get("/health")).json()["selflearn"]
        assert health["schedule"]["unattended"] is True
        last = health["schedule"]["last"]
        assert last["micro"]["seed"] != last["macro"]["seed"]  # fresh each time
        assert last["macro"]["goal"] == made["id"]  # the learning cycle works on the active goal
        views = [(await c.get(f"{BASE}/cycles/{x['id']}")).json() for x in done]
        seeds = {v["config"]["seed"] for v in views}
        assert len(seeds) == len(views)  # every scheduled cycle had its own seed
        # a learning cycle is fed the uploaded conversations beside its world; a micro is not
        fed = {v["kind"]: v["config"].get("corpus") for v in views}
        assert fed["macro"] == [digest] and fed["micro"] is None
        assert last["macro"]["conversations"] == 1
        assert (await c.get(f"{BASE}/schedule")).json()["schedule"]["learn_kind"] == "macro"


async def test_the_budget_and_live_traffic_pause_it_and_a_setting_turns_it_off(
    db_url: str, tmp_path: Path
) -> None:
    async with managed(db_url, tmp_path, manager={**FAST, "max_runs_per_day": 1}) as api:
        c = api.client

        async def started_one() -> bool:
            return bool(await _scheduled(c))

        await eventually(started_one, 60)

        async def paused() -> str | None:
            state: str = (await c.get(f"{BASE}/schedule")).json()["schedule"]["state"]
            return state if "emulator runs today" in state else None

        assert "paused" in await eventually(paused, 180)
        count = len(await _scheduled(c))
        assert len(await _scheduled(c)) == count  # nothing more starts while paused
    async with managed(db_url, tmp_path, manager={**FAST, "pause_live_runs_per_min": 0}) as api:
        c = api.client
        alice = await api.user("alice")
        assert (
            await alice.post("/v1/chat", json={"message": "My cat is called Tofu."})
        ).status_code == 200

        async def traffic() -> str | None:
            state: str = (await c.get(f"{BASE}/schedule")).json()["schedule"]["state"]
            return state if "live traffic" in state else None

        await eventually(traffic, 30)
    async with managed(db_url, tmp_path, manager={**FAST, "unattended": False}) as api:
        c = api.client

        async def off() -> bool:
            part = (await c.get("/health")).json()["selflearn"]["schedule"]
            return bool(part["state"] == "off")

        await eventually(off, 10)
        assert not [x for x in await _scheduled(c) if x["status"] == "running"]


async def test_the_dashboard_shows_unattended_learning(db_url: str, tmp_path: Path) -> None:
    import httpx

    from maas.app import create_app
    from selflearn.extension import extend as learn_extend
    from tests.conftest import Api
    from tests.conftest import test_settings as settings_for
    from tests.security.test_web import cookie
    from tests.selflearn.manager_helpers import learn_settings, manager_settings
    from web.extension import extend as web_extend

    learn = learn_settings()
    app = create_app(settings_for(db_url, tmp_path),
                     extensions=[web_extend, lambda h: learn_extend(h, learn)])  # fmt: skip
    app.state.selflearn_manager.settings = manager_settings(unattended=True, schedule_micro_s=900)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://maas") as c:
            api = Api(app, c)
            page = await c.get("/ui/dashboard", headers=await cookie(api, ADMIN_KEY))
    assert page.status_code == 200
    assert 'id="schedule"' in page.text and "Unattended learning: <strong>" in page.text
    shown = page.text.split('id="schedule"', 1)[1].split("</p>", 1)[0]
    assert re.search(r"next micro in (8\d\d|900) s", shown), shown  # ~900 s from now
