"""`/docs` renders every operation from this origin alone: no CDN, and nothing the strict CSP
refuses (a refused script or style is a console error, which fails the test)."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Site


def test_the_api_docs_render_from_our_own_origin_under_the_csp(site: Site, page: Any) -> None:
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(site.url + "/docs")
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() >= 20  # every route of the API, not a blank page
    assert page.locator(".opblock-summary-path", has_text="/v1/chat").count() >= 1
    page.locator(".opblock-summary").first.click()  # expand one: its schema and "Try it out"
    page.locator(".opblock-body").first.wait_for()
    page.locator("button.try-out__btn").first.click()
    page.locator(".opblock-body .execute").first.wait_for()
    assert requested and all(url.startswith(site.url) for url in requested), requested
