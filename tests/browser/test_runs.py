"""The runs list in a real browser: filters by user, client type, status and thread, with the
emulator's runs (self-learning's simulated users: most runs after a few cycles) hidden by
default."""

from __future__ import annotations

import uuid
from typing import Any

from tests.browser.conftest import Site, execute, login
from tests.browser.test_pages import archive


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


def test_the_inspector_nests_the_assembler_parts_under_its_bar(site: Site, page: Any) -> None:
    """A cold assembler was one flat bar. Its parts (embedding the query, the search with its
    connection wait, one search statement and the ranking, the packing) are nested bars under
    it, inside its span, and a table says what each found: the candidates of each search arm
    (they share the statement's one time, and the page says so)."""
    who = site.new_user("spans")
    with site.api(who) as api:
        for fact in ("My cat Miso likes tuna.", "My cat sleeps on the sofa."):
            told = api.post("/v1/chat", json={"message": fact}).json()
            archive(api, told["thread_id"])
        asked = api.post("/v1/chat", json={"message": "Tell me about my cat"}).json()
    login(page, site, who, f"/ui/runs/{asked['run_id']}")
    rows = page.locator("#timeline svg.chart g.row")
    kinds = rows.evaluate_all("gs => gs.map(g => [g.dataset.status, g.dataset.part || null])")
    at = kinds.index(["ASSEMBLING", None])
    parts = ["embed query", "search", "wait for a connection", "search statement", "rank"]
    parts += ["prioritise", "pack"]
    assert [p for _, p in kinds[at + 1 : at + 8]] == parts, kinds
    assert kinds[at + 8][1] is None  # then the statuses go on

    def box(row: Any) -> tuple[float, float]:
        bar = row.locator("rect.bar")
        x, width = float(bar.get_attribute("x")), float(bar.get_attribute("width"))
        return x, x + width

    start, end = box(rows.nth(at))
    for i in range(at + 1, at + 8):  # inside the stage's bar (1.5: a tiny part's least width)
        left, right = box(rows.nth(i))
        assert start - 0.01 <= left and right <= end + 1.5, (kinds[i], start, end, left, right)
    indent = [float(rows.nth(at + i).locator("text.label").get_attribute("x")) for i in (1, 3)]
    assert indent[1] > indent[0]  # the search statement sits under the search

    table = page.locator("#assembler-parts")
    statement = table.locator("tr[data-part='search statement']").inner_text()
    assert "bm25 2" in statement and "trigram off" in statement, statement
    assert "vector 2" in statement  # the site embeds: the vector arm ran and found both
    embed = table.locator("tr[data-part='embed query'] td.part-ms").inner_text()
    assert embed.endswith(" ms") and float(embed.split()[0].replace(",", "")) > 0
    assert "run inside one SQL statement" in page.inner_text("#parts-note")
