"""The runs list in a real browser: filters by user, client type, status and thread, with the
emulator's runs (self-learning's simulated users: most runs after a few cycles) hidden by
default."""

from __future__ import annotations

import uuid
from typing import Any

from tests.browser.conftest import Site, execute, login


def test_runs_filter_by_user_client_status_thread_and_hide_the_emulator(
    site: Site, page: Any, web_db: str
) -> None:
    ann, ben = site.new_user("ann"), site.new_user("ben")
    with site.api(ann) as api:
        first = api.post("/v1/chat", json={"message": "ann's thread, first"}).json()
        api.post("/v1/chat", json={"message": "ann again", "thread_id": first["thread_id"]})
        api.post("/v1/chat", json={"message": "ann elsewhere"})
        sim = api.post(
            "/v1/chat", json={"message": "a simulated user"}, headers={"X-MaaS-Client": "emulator"}
        ).json()
    with site.api(ben) as api:
        api.post(
            "/v1/chat", json={"message": "ben's only run"}, headers={"X-MaaS-Client": "test-runner"}
        )
    # one of ann's runs failed (as a run does when its stage gives up)
    failed = "UPDATE maas.pipeline_runs SET status = 'FAILED', error = 'boom' WHERE id = $1"
    execute(web_db, failed, uuid.UUID(first["run_id"]))

    def queries() -> list[str]:
        return page.locator("#run-table td.mem-text").all_inner_texts()

    login(page, site, ann, "/ui/runs")
    assert "a simulated user" not in queries() and len(queries()) == 3  # emulator hidden
    assert page.locator("#emulator-hidden").is_visible()
    page.select_option("#filter-client", "emulator")
    page.click("#filter-runs")
    page.wait_for_url("**client=emulator*")
    assert queries() == ["a simulated user"]
    page.select_option("#filter-client", "*")
    page.select_option("#filter-status", "FAILED")
    page.click("#filter-runs")
    page.wait_for_url("**status=FAILED*")
    assert queries() == ["ann's thread, first"]
    page.goto(f"{site.url}/ui/runs?client=*&thread={first['thread_id']}")
    assert sorted(queries()) == ["ann again", "ann's thread, first"]
    assert sim["run_id"] not in page.content()

    page.context.clear_cookies()
    login(page, site, "admin", "/ui/runs")
    page.fill("#filter-user", ben)
    page.select_option("#filter-client", "test-runner")
    page.click("#filter-runs")
    page.wait_for_url(f"**user={ben}*")
    assert queries() == ["ben's only run"]
    page.fill("#filter-user", ann)
    page.click("#filter-runs")
    page.wait_for_url(f"**user={ann}*")
    assert page.inner_text("#no-runs") == "No runs match these filters."
