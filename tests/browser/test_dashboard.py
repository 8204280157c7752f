"""The self-learning dashboard in a real browser, in offline mode: create a goal, start a macro
cycle and follow its progress to the verdict (it ships a fix), approve a critical proposal, roll
back a version. The app runs with the web and self-learning extensions, served by
uvicorn, and the emulator reaches it over real HTTP."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from bench.database import admin_sql, with_database
from maas.app import create_app
from selflearn.extension import extend as learn_extend
from tests.browser.conftest import Site, login, off_loop
from tests.conftest import TEMPLATE
from tests.conftest import test_settings as settings_for
from tests.e2e.conftest import free_port
from tests.selflearn.manager_helpers import BROKEN, FIXED, learn_settings, manager_settings
from web.extension import extend as web_extend

BASE = "/v1/selflearn"


@pytest.fixture(scope="module")
def learn_site(
    pg_uri: str, template_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    name = f"maas_dash_{uuid.uuid4().hex[:12]}"
    off_loop(admin_sql(pg_uri, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
    port = free_port()
    settings = settings_for(with_database(pg_uri, name), tmp_path_factory.mktemp("dash"),
                             rate_limit_per_min=0, host="127.0.0.1", port=port)  # fmt: skip
    learn = learn_settings()
    app = create_app(settings, extensions=[web_extend, lambda h: learn_extend(h, learn)])
    app.state.selflearn_manager.settings = manager_settings()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-dash", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield Site(f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=15)
    off_loop(admin_sql(pg_uri, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def activate(http: httpx.Client, params: dict[str, Any], reason: str) -> int:
    made = http.post(f"{BASE}/parameters/versions", json={"params": params, "reason": reason})
    version: int = made.json()["version"]
    ok = http.post(f"{BASE}/parameters/activate", json={"version": version, "reason": reason})
    assert ok.status_code == 200, ok.text
    return version


def wait_cycle(http: httpx.Client, cycle_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = http.get(f"{BASE}/cycles/{cycle_id}").json()
        if view["status"] != "running":
            return view
        assert time.monotonic() < deadline, view
        time.sleep(0.3)


def test_dashboard_goal_macro_cycle_approval_rollback(learn_site: Site, page: Any) -> None:
    site = learn_site
    with site.api("admin") as http:
        activate(http, BROKEN, "a bad change made by hand")
    login(page, site, "admin", "/ui/dashboard")
    assert page.locator("#no-goals").is_visible()

    # create a goal, with the parameter range cycles may search
    page.fill("#goal-form [name=name]", "Find <b>memories</b>")
    page.select_option("#goal-form [name=metric]", "found_anything_rate")
    page.fill("#goal-form [name=target]", "0.8")
    page.select_option("#goal-form [name=c_metric]", "latency_p95_ms")
    page.fill("#goal-form [name=c_value]", "60000")
    page.select_option("#goal-form [name=s_param]", "retrieval.min_score")
    page.fill("#goal-form [name=s_low]", "0")
    page.fill("#goal-form [name=s_high]", "0.1")
    page.click("#create-goal")
    goal = page.locator(".goal").first
    goal.wait_for()
    assert goal.locator(".goal-name").inner_text() == "Find <b>memories</b>"  # shown, not parsed

    # start a macro cycle from the goal: its page shows live progress, then the verdict
    goal.locator(".start-cycle[data-kind=macro]").click()
    page.wait_for_url("**/ui/dashboard/cycles/**")
    page.wait_for_function(
        "() => Number(document.querySelector('.cycle-progress')?.value) > 0"
        " || document.querySelector('#cycle-outcome')"
    )
    page.locator("#cycle-outcome .outcome").wait_for(timeout=120_000)
    assert page.locator("#cycle-outcome .outcome").inner_text() == "shipped"
    assert page.locator(".report .pill.verdict-SHIP").count() == 1
    assert page.locator(".report svg.ci").count() >= 1  # effect sizes with CIs, drawn

    # a critical change (context budget beyond its bound) waits for a person
    with site.api("admin") as http:
        activate(http, BROKEN, "broken again, by hand")
        goal_id = http.get(f"{BASE}/goals").json()[0]["id"]
        # the goal's second test runs at a quarter of the first's α: it needs more scenarios
        body = {"kind": "macro", "goal_id": goal_id, "dialogs": 45,
                "variant": {**FIXED, "context.max_tokens": 6000}}  # fmt: skip
        started = http.post(f"{BASE}/cycles", json=body).json()
        assert wait_cycle(http, started["id"])["outcome"] == "proposed"
    page.goto(f"{site.url}/ui/dashboard")
    proposal = page.locator(".proposal").first
    assert "context.max_tokens" in proposal.locator(".critical").inner_text()
    assert proposal.locator("svg.ci").count() >= 1
    page.locator(".goal-plot").first.wait_for()
    proposal.locator(".approve").click()
    page.wait_for_load_state()
    page.locator("text=Nothing waits for a person.").wait_for()
    with site.api("admin") as http:
        active = http.get(f"{BASE}/parameters/active").json()["active"]
        assert active["params"]["context.max_tokens"] == 6000

    # pause the goal: it takes no cycle until resumed
    page.click(".goal .goal-status[data-status=paused]")
    page.locator(".goal .pill.goal-paused").wait_for()
    assert page.locator(".goal .start-cycle[data-kind=macro]").is_disabled()
    page.click(".goal .goal-status[data-status=active]")
    page.locator(".goal .pill.goal-active").wait_for()

    # roll back the approved version from the parameters page
    page.goto(f"{site.url}/ui/dashboard/parameters")
    before = page.locator("#active-version").inner_text()
    page.fill("#rollback-form [name=reason]", "too costly")
    page.click("#rollback")
    page.wait_for_function(
        "t => document.querySelector('#active-version').innerText !== t", arg=before
    )
    assert page.locator("#versions .pill.st-FAILED").count() >= 1  # marked rolled back
    assert "too costly" in page.locator("#audit").inner_text()


def test_dashboard_needs_the_admin_key(learn_site: Site, page: Any, console: Any) -> None:
    console.allow(403)
    learn_site.add_user("carol")
    login(page, learn_site, "carol", "/ui/memories")
    resp = page.goto(f"{learn_site.url}/ui/dashboard")
    assert resp is not None and resp.status == 403
    page.goto(f"{learn_site.url}/ui/dashboard")
    assert "admin key" in page.content()
