"""Pages for what goes wrong: an unknown /ui address is an HTML 404 page (not the API's JSON),
every error card leads somewhere the viewer can go, and the login page says where keys are."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Console, Site, login


def test_an_unknown_ui_address_is_an_html_404_page(site: Site, page: Any, console: Console) -> None:
    console.allow(404, 405)
    for path in ("/ui/nope", "/ui/runs/extra/segments", "/ui/static/missing.css"):
        resp = page.goto(site.url + path)
        assert resp is not None and resp.status == 404, path
        assert resp.headers["content-type"].startswith("text/html"), path
        assert page.inner_text("h1") == "Not found", path
        assert "script-src 'self'" in resp.headers["content-security-policy"]
        assert page.locator("a[href='/ui/login']").count() >= 1  # not logged in: the way in
    login(page, site, "alice")
    resp = page.goto(site.url + "/ui/chats")  # a typo, logged in: the page keeps its nav
    assert resp is not None and resp.status == 404
    assert page.locator(".top nav a[href='/ui/chat']").count() == 1
    assert page.locator("main a[href='/ui/chat']").inner_text() == "Back to the chat"
    resp = page.goto(site.url + "/ui/logout")  # a form's target, fetched: 405, still a page
    assert resp is not None and resp.status == 405 and page.inner_text("h1") == "Not allowed"


def test_error_cards_lead_the_admin_to_the_runs_not_to_a_chat_it_has_not(
    site: Site, page: Any, console: Console
) -> None:
    console.allow(403, 404)
    login(page, site, "admin", "/ui/runs")
    resp = page.goto(site.url + "/ui/memories")
    assert resp is not None and resp.status == 403
    back = page.locator("main .card a")
    assert back.inner_text() == "Back to the runs" and back.get_attribute("href") == "/ui/runs"
    assert "chat" not in page.inner_text("main .card").lower()
    page.goto(site.url + "/ui/runs/00000000-0000-4000-8000-000000000000")
    assert page.locator("main .card a").inner_text() == "Back to the runs"


def test_the_login_page_says_where_the_keys_are(site: Site, page: Any) -> None:
    page.goto(site.url + "/ui/login")
    text = page.inner_text("main")
    # This server's admin key comes from MAAS_ADMIN_KEY (the tests set it): no key was generated
    # or printed for the admin, and the demo user's key is in the data directory.
    assert "MAAS_ADMIN_KEY" in text and "credentials.json" in text
    assert "demo" in text and "admin key printed" not in text
