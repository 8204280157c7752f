"""The memory browser and old traces in a real browser: search by meaning through the retrieval
of /v1/context (scores and arms shown; exact words as an option), a delete that asks first and
says what it did, and a deleted memory that keeps its row in the traces of earlier runs."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.conftest import Site, login
from tests.browser.test_pages import archive

FACTS = (
    "My sister Ana has a dog called Pico.",
    "I play the cello every Sunday.",
    "My office is on the third floor of the bank building.",
)


def remember(site: Site, who: str, *facts: str) -> None:
    """Each fact its own thread, archived: one memory each (offline archivist)."""
    with site.api(who) as api:
        for fact in facts:
            told = api.post("/v1/chat", json={"message": fact}).json()
            archive(api, told["thread_id"])


def test_memory_search_finds_by_meaning_with_scores_and_arms(site: Site, page: Any) -> None:
    who = site.new_user("meaning")
    remember(site, who, *FACTS)
    login(page, site, who, "/ui/memories")
    for query in ("pets", "Where does my sister's dog live"):
        page.fill("#memory-query", query)
        page.click("#memory-search")
        page.wait_for_url(re.compile(r".*/ui/memories\?q="))
        first = page.locator("#memory-table tbody tr").first
        assert "Pico" in first.inner_text(), (query, page.inner_text("main"))
        arms = first.locator("td.score .chip").all_inner_texts()
        assert any(a.startswith("vector ") for a in arms), arms  # the arm that found it, shown
        assert float(first.locator("td.score strong").inner_text()) > 0
    assert "POST /v1/context" in page.inner_text("#search-how")
    # the exact-words filter is still there, as an option: "pets" is in no memory's words
    page.fill("#memory-query", "pets")
    page.check("#memory-exact")
    page.click("#memory-search")
    page.wait_for_url("**exact=1*")
    assert page.inner_text("#no-memories") == "Nothing matches."
    page.goto(f"{site.url}/ui/memories?page=40")
    assert "Back to page 1" in page.inner_text("#no-memories")  # not "No memories yet"


def test_a_deleted_memory_keeps_its_row_in_earlier_traces(site: Site, page: Any) -> None:
    who = site.new_user("forget")
    remember(site, who, *FACTS[:2])
    with site.api(who) as api:
        asked = api.post("/v1/chat", json={"message": "What is my sister's dog called?"}).json()
        memory = next(m for m in asked["memories_used"] if "Pico" in m["text"])
    login(page, site, who, f"/ui/runs/{asked['run_id']}")
    before = page.locator("#memories tbody tr").count()
    heading = page.inner_text("#memories h2")
    assert before >= 2 and "Score =" in page.inner_text("#score-legend")

    page.goto(f"{site.url}/ui/memories?q=Pico&exact=1")
    row = page.locator(f"#memory-table tr[data-memory='{memory['id']}']")
    row.locator("summary").click()  # a delete asks first, and says what happens to the traces
    assert "past runs keep a row" in row.locator(".confirm-box").inner_text()
    row.locator("button.confirm-delete").click()
    page.wait_for_url(re.compile(r".*deleted=\d+"))
    notice = page.inner_text("#memory-deleted")
    assert f"Memory #{memory['id']} is deleted" in notice and "cannot be undone" in notice
    assert page.locator("#no-memories").inner_text() == "Nothing matches."

    page.goto(f"{site.url}/ui/runs/{asked['run_id']}")
    rows = page.locator("#memories tbody tr")
    assert rows.count() == before and page.inner_text("#memories h2") == heading
    gone = page.locator(f"#memories tr[data-memory='{memory['id']}']")
    assert gone.locator(".mem-text").inner_text() == f"memory #{memory['id']} (deleted)"
    assert gone.locator("td").first.inner_text() == str(memory["rank"])  # ranks unchanged
    assert "Pico" not in page.inner_text("#memories")
