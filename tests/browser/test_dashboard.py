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
from tests.browser.conftest import Site, execute, login, off_loop
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
    yield Site(f"http://127.0.0.1:{port}", with_database(pg_uri, name))
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


@pytest.mark.slow
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
    cycle_id = page.url.rsplit("/", 1)[-1]
    page.goto(f"{site.url}/v1/selflearn/reports/{cycle_id}?format=html")  # no favicon 404
    assert page.locator("link[rel=icon]").get_attribute("href") == "/ui/static/favicon.svg"

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


def test_a_goal_now_is_the_version_in_force_with_its_ci(learn_site: Site, page: Any) -> None:
    """Measured on V1 (in force), an arm of V2 (never in force), then on V2 once activated, then
    V2 rolled back: "now" is V1's value with its CI, named, not the newest in-force number."""
    site = learn_site
    with site.api("admin") as http:
        goal = http.post(f"{BASE}/goals", json={"name": f"now-{uuid.uuid4().hex[:6]}",
                         "metric": "found_anything_rate", "target": 0.9}).json()  # fmt: skip
        v1 = activate(http, FIXED, "v1 in force")
        measure(site, goal["id"], 0.41, (0.36, 0.46), f"tuner-{v1}", True)
        made = http.post(f"{BASE}/parameters/versions", json={"params": BROKEN, "reason": "v2"})
        v2 = made.json()["version"]
        measure(site, goal["id"], 0.2678, (0.2, 0.33), f"tuner-{v2}", False)  # an arm
        ok = http.post(f"{BASE}/parameters/activate", json={"version": v2, "reason": "v2 on"})
        assert ok.status_code == 200, ok.text
        measure(site, goal["id"], 0.55, (0.5, 0.6), f"tuner-{v2}", True)
        back = http.post(f"{BASE}/parameters/rollback", json={"reason": "v2 off"})
        assert back.status_code == 200, back.text
    login(page, site, "admin", "/ui/dashboard")
    card = page.locator(f".goal[data-goal='{goal['id']}']")
    assert card.locator(".goal-current").inner_text() == "0.41"
    in_force = page.inner_text("#in-force")  # the rollback's copy of V1
    assert card.locator(".goal-version").inner_text() == in_force != f"tuner-{v2}"
    assert f"measured as tuner-{v1}: the same parameters" in card.inner_text()
    assert card.locator(".goal-ci").inner_text() == "[0.36, 0.46]"
    assert "the version in force" in card.locator(".goal-now").inner_text()
    with site.api("admin") as http:  # a version nobody measured yet is in force: said so
        activate(http, {**FIXED, "retrieval.min_score": 0.01}, "v3, unmeasured")
    page.reload()
    text = card.locator(".goal-now").inner_text()
    assert "is not measured yet" in text and f"last: 0.55 on tuner-{v2}" in text, text
    assert card.locator(".goal-version").inner_text() == page.inner_text("#in-force")
    assert card.locator(".goal-current").count() == 0


def measure(site: Site, goal: int, value: float, ci: tuple[float, float] | None, version: str,
            in_force: bool, source: str = "") -> None:  # fmt: skip
    sql = ("INSERT INTO selflearn.goal_measurements (goal_id, metric, value, ci_low, ci_high, "
           "param_version, source, in_force) VALUES ($1, 'found_anything_rate', $2, $3, $4, $5, "
           "$6, $7)")  # fmt: skip
    source = source or ("micro" if in_force else "variant")
    low, high = ci or (None, None)
    execute(site.dsn, sql, goal, value, low, high, version, source, in_force)


def test_a_running_deep_cycle_shows_its_trials_live(learn_site: Site, page: Any) -> None:
    """Trial rows are appended while the cycle runs, without a reload (the cycle and its
    experiments are rows here: a real deep search takes minutes)."""
    site = learn_site
    cycle = execute(site.dsn, "INSERT INTO selflearn.cycles (kind, requested_by, phase, progress, "
                    "lease_token, lease_until) VALUES ('deep', 'test', 'trial 1 of 8', 0.05, "
                    "gen_random_uuid(), now() + interval '1 hour') RETURNING id")  # fmt: skip
    try:
        login(page, site, "admin", f"/ui/dashboard/cycles/{cycle}")
        rows = page.locator("#cycle-experiments tbody tr")
        assert rows.count() == 0
        page.evaluate("window.__same = document.querySelector('#cycle-experiments')")
        trial(site, cycle, 0, "SHIP")
        rows.nth(0).wait_for()
        trial(site, cycle, 1, None)
        rows.nth(1).wait_for()
        assert rows.nth(0).locator("td").all_inner_texts()[:2] == ["trial", "1"]
        assert rows.nth(0).locator(".pill.verdict-SHIP").inner_text() == "SHIP"
        assert rows.nth(1).locator("td").all_inner_texts()[3:] == ["running", "—"]
        # the same table, appended to: no reload
        assert page.evaluate("window.__same === document.querySelector('#cycle-experiments')")
    finally:
        execute(site.dsn, "UPDATE selflearn.cycles SET status = 'stopped', finished_at = now(), "
                "lease_until = NULL WHERE id = $1", cycle)  # fmt: skip


def trial(site: Site, cycle: uuid.UUID, number: int, verdict: str | None) -> None:
    exp = execute(site.dsn, "INSERT INTO selflearn.experiments (name, spec, spec_hash, mode, "
                  "status) VALUES ($1, '{}', 'h', 'paired', $2) RETURNING id",
                  f"trial-{number}", "done" if verdict else "running")  # fmt: skip
    execute(site.dsn, "INSERT INTO selflearn.cycle_experiments (cycle_id, experiment_id, role, "
            "trial) VALUES ($1, $2, 'trial', $3)", cycle, exp, number)  # fmt: skip
    if verdict:
        execute(site.dsn, "INSERT INTO selflearn.verdicts (experiment_id, spec_hash, verdict, "
                "reasons, recommendations, metrics, checks) VALUES ($1, 'h', $2, '{}', '{}', "
                "'{}', '{}')", exp, verdict)  # fmt: skip


def test_goal_plot_legend_and_forms_say_what_they_mean(
    learn_site: Site, page: Any, console: Any
) -> None:
    """The plot: activated variant filled, baseline and variant side by side, CIs, a time axis,
    a legend, readable text, mark labels inside; the goal form's errors next to their field;
    archived goals can be shown; long reasons end in an ellipsis; no version reads built-in."""
    console.allow(409, 422)  # the refused goals, on purpose
    site, name = learn_site, f"plot-{uuid.uuid4().hex[:6]}"
    with site.api("admin") as http:
        goal = http.post(f"{BASE}/goals", json={"name": name, "metric": "found_anything_rate",
                         "target": 0.9}).json()  # fmt: skip
        measure(site, goal["id"], 0.4, (0.3, 0.5), "builtin", True)
        shipped = http.post(f"{BASE}/parameters/versions", json={"params": FIXED, "reason": "s"})
        other = http.post(f"{BASE}/parameters/versions", json={"params": BROKEN, "reason": "o"})
        arm = {"source": "baseline", "version": "builtin"}
        measure(site, goal["id"], 0.41, None, arm["version"], True, arm["source"])
        measure(site, goal["id"], 0.6, (0.5, 0.7), f"tuner-{shipped.json()['version']}", False)
        measure(site, goal["id"], 0.2, (0.1, 0.3), f"tuner-{other.json()['version']}", False)
        ok = http.post(f"{BASE}/parameters/activate", json={"version": shipped.json()["version"],
                       "reason": "r" * 300})  # fmt: skip
        assert ok.status_code == 200, ok.text
        gone = http.post(f"{BASE}/goals", json={"name": f"old-{name}", "metric":
                         "found_anything_rate", "target": 0.5}).json()  # fmt: skip
        http.patch(f"{BASE}/goals/{gone['id']}", json={"status": "archived"})
    login(page, site, "admin", "/ui/dashboard")
    card = page.locator(f".goal[data-goal='{goal['id']}']")
    plot = card.locator("svg.goal-plot")
    kinds = plot.locator("circle.pt").evaluate_all("cs => cs.map(c => c.getAttribute('class'))")
    assert kinds == ["pt pt-force", "pt pt-baseline", "pt pt-shipped", "pt pt-variant"]
    fills = plot.locator("circle.pt").evaluate_all("cs => cs.map(c => getComputedStyle(c).fill)")
    assert fills[2] != "rgb(255, 255, 255)" and fills[3] == "rgb(255, 255, 255)"  # hollow: not
    xs = plot.locator("circle.pt").evaluate_all("cs => cs.map(c => +c.getAttribute('cx'))")
    assert xs[1] < xs[2]  # the baseline beside its variant, not under it
    assert plot.locator("line.ci-bar").count() == 3  # the three measurements with a CI
    assert plot.locator("text.time").count() >= 1 and "UTC" in card.locator(".legend").inner_text()
    assert "variant, not activated" in card.locator(".legend").inner_text()
    size = plot.locator("text.tick").first.evaluate("t => parseFloat(getComputedStyle(t).fontSize)")
    assert size >= 11
    box = plot.bounding_box()
    for label in plot.locator("text.change-label").all():
        inner = label.bounding_box()
        assert (
            box
            and inner
            and box["x"] <= inner["x"]
            and inner["x"] + inner["width"] <= (box["x"] + box["width"])
        ), label.inner_text()  # not clipped at the edge
    gap = page.evaluate("getComputedStyle(document.querySelector('.dash')).rowGap")
    assert gap not in ("normal", "0px"), gap

    # the goal form: a duplicate name and a flipped range, each refused next to its field
    page.fill("#goal-form [name=name]", name.upper())
    page.fill("#goal-form [name=target]", "0.5")
    page.click("#create-goal")
    page.locator("#goal-name-error").wait_for()
    assert "exists" in page.inner_text("#goal-name-error")
    page.fill("#goal-form [name=name]", f"new-{name}")
    page.select_option("#goal-form [name=s_param]", "retrieval.min_score")
    page.fill("#goal-form [name=s_low]", "0.5")
    page.fill("#goal-form [name=s_high]", "0.1")
    page.click("#create-goal")
    page.locator("#goal-space-error").wait_for()
    assert "low end 0.5 must be below the high end 0.1" in page.inner_text("#goal-space-error")
    assert page.locator("#goal-name-error").is_hidden()

    page.click("#show-archived")  # archived goals are not gone
    page.locator(f".archived-goal[data-goal='{gone['id']}']").wait_for()
    page.goto(f"{site.url}/ui/dashboard/parameters")
    audit = page.inner_text("#audit")
    assert "n/a" not in audit and "built-in →" in audit  # the first activation's "before"
    cut = [t for t in page.locator("#audit td:last-child").all_inner_texts() if t.startswith("rrr")]
    assert cut and cut[0].endswith("…") and len(cut[0]) == 200
    assert "no version is made" in page.inner_text("#rollback-help")
