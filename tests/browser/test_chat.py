"""The chat page in a real browser at 1,280 px: nothing pushed off-screen by a long title or an
unbroken string; an over-long or blank message refused visibly; the live strip timing each status
on its own step and ticking while it runs; the sidebar and the thread's state kept current."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Console, Site, execute, login
from tests.browser.test_pages import archive

LIMIT = 32_000  # MAAS_MAX_MESSAGE_CHARS by default


def fits(page: Any, selector: str, width: int = 1280) -> None:
    box = page.locator(selector).first.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (selector, box)


def test_a_long_title_and_an_unbroken_message_stay_inside_1280_px(site: Site, page: Any) -> None:
    who = site.new_user("wide")
    word = "Supercalifragilistic" * 30  # 600 characters, no space to break at
    with site.api(who) as api:
        told = api.post("/v1/chat", json={"message": f"{word}\nand a second line"}).json()
    login(page, site, who, f"/ui/chat?thread={told['thread_id']}")
    assert page.inner_text("#thread-title").startswith("Supercalifragilistic")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"the page is {width} px wide in a 1,280 px window"
    for selector in ("#close-thread", "#messages .msg.user .text", "#send", ".threads .title"):
        fits(page, selector)


def test_an_over_long_message_is_refused_with_the_apis_422_and_a_counter(
    site: Site, page: Any, console: Console
) -> None:
    console.allow(422)  # the refused send, on purpose
    who = site.new_user("long")
    login(page, site, who)
    counter = page.locator("#message-count")
    page.fill("#message", "a" * 1000)
    assert not counter.is_visible()  # far from the limit: no counter
    page.fill("#message", "b" * (LIMIT - 100))
    assert counter.is_visible() and "31,900" in counter.inner_text()
    text = "word " * (LIMIT // 5) + "the end of what I wrote"
    page.fill("#message", text)
    assert page.input_value("#message") == text  # nothing cut while typing or pasting
    assert "over" in counter.inner_text() and "over" in (counter.get_attribute("class") or "")
    page.click("#send")
    error = page.locator("#chat-error")
    error.wait_for()
    assert f"at most {LIMIT} characters" in error.inner_text()  # the API's own refusal
    assert page.input_value("#message") == text  # kept, for the user to shorten
    assert page.locator("#messages .msg").count() == 0
    with site.api(who) as api:
        assert api.get("/v1/threads").json()["threads"] == []  # nothing was sent, cut or not


def test_a_blank_message_says_why_nothing_was_sent(site: Site, page: Any) -> None:
    login(page, site, site.new_user("blank"))
    page.fill("#message", "   \n\t  ")
    page.click("#send")
    assert page.locator("#chat-error").inner_text() == "Write a message first: it is empty."
    assert page.locator("#messages .msg").count() == 0


def test_the_strip_times_each_status_on_its_own_step_and_ticks_while_it_waits(
    site: Site, web_db: str, page: Any
) -> None:
    who = site.new_user("strip")
    with site.api(who) as api:
        first = api.post("/v1/chat", json={"message": "I keep bees on the roof."}).json()
    login(page, site, who, f"/ui/chat?thread={first['thread_id']}")
    # A worker that never comes back holds the thread's first run (a lease for an hour): the next
    # message of the thread waits in NEW behind it, as it would behind a slow run.
    execute(
        web_db,
        "UPDATE maas.pipeline_runs SET status = 'RESPONDING', lease_token = gen_random_uuid(),"
        " claimed_until = now() + interval '1 hour' WHERE id = $1::text::uuid",
        first["run_id"],
    )
    page.fill("#message", "Where are the bees?")
    page.click("#send")
    strip = page.locator(".run-status").last
    new = strip.locator(".step[data-status=NEW]")
    page.wait_for_function(
        "el => parseInt(el.querySelector('.ms').textContent.replace(/\\D/g, '')) >= 400",
        arg=new.element_handle(),
    )  # the waiting step counts up while the run sits in it
    assert "current" in (new.get_attribute("class") or "")
    done = strip.locator(".step[data-status=COMPLETED]")
    assert done.evaluate("el => getComputedStyle(el).backgroundColor") != "rgb(209, 250, 223)"
    execute(  # the slow run ends: the waiting one goes on
        web_db,
        "UPDATE maas.pipeline_runs SET status = 'COMPLETED', lease_token = NULL"
        " WHERE id = $1::text::uuid",
        first["run_id"],
    )
    page.wait_for_function("el => el.dataset.final", arg=strip.element_handle())
    assert done.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(209, 250, 223)"
    run_id = strip.get_attribute("data-run")
    with site.api(who) as api:
        history = api.get(f"/v1/runs/{run_id}").json()["history"]
    at = {e["status"]: e["at"] for e in history}
    order = [e["status"] for e in history]
    for status, after in zip(order, order[1:], strict=False):
        shown = strip.locator(f".step[data-status={status}] .ms").inner_text()
        exact = ms_between(at[status], at[after])  # the browser's clock reads whole ms
        assert abs(int("".join(c for c in shown if c.isdigit())) - exact) <= 1, (status, shown)
    assert ms_between(at["NEW"], at["ANALYZING"]) >= 400  # the wait showed on NEW, not later


def ms_between(a: str, b: str) -> int:
    from datetime import datetime

    return round((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() * 1000)


def test_sidebar_and_thread_state_follow_sends_closes_and_reopening(site: Site, page: Any) -> None:
    who = site.new_user("side")
    login(page, site, who)
    assert not page.locator("#thread-state").is_visible()  # no thread yet: neither open nor closed
    page.fill("#message", "My sister Ana has a dog called Pico.")
    page.click("#send")
    page.locator(".msg.assistant").first.wait_for()
    entry = page.locator("#thread-list .thread-link.active")
    page.wait_for_function(
        "() => document.querySelector('#thread-list .active .count')?.textContent === '2 msg'"
    )
    page.click("#close-thread")
    page.locator("#archive[data-state=done]").wait_for()
    assert "closed" in entry.inner_text()
    assert page.locator("#reopen-note").is_visible()  # says what writing here will do
    page.fill("#message", "What is the dog called?")
    page.click("#send")
    page.locator(".msg.assistant").nth(1).wait_for()
    assert page.inner_text("#thread-state") == "open"
    assert "reopened" in page.inner_text("#chat-note")
    page.wait_for_function(
        "() => document.querySelector('#thread-list .active .count')?.textContent === '4 msg'"
    )
    assert "closed" not in entry.inner_text()
    used = page.locator(".msg.assistant").nth(1).locator("details.used")
    assert used.count() == 1
    fresh = used.evaluate("d => d.open")
    page.reload()
    assert (
        page.locator(".msg.assistant").nth(1).locator("details.used").evaluate("d => d.open")
        is fresh
    )  # the same state whether the answer just came or the page was reloaded


def test_writing_into_a_closed_thread_is_announced(site: Site, page: Any) -> None:
    who = site.new_user("closed")
    with site.api(who) as api:
        told = api.post("/v1/chat", json={"message": "The shed key is under the stone."}).json()
        archive(api, told["thread_id"])
    login(page, site, who, f"/ui/chat?thread={told['thread_id']}")
    assert page.inner_text("#thread-state") == "closed"
    note = page.locator("#reopen-note")
    assert note.is_visible() and "reopens" in note.inner_text()
