"""The web UI in a real browser: log in, chat with live status, inspect a run, browse memories,
stored markup stays inert, the admin key reads every user's runs and writes nothing."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from tests.browser.conftest import Console, Site, execute, login

SCRIPT, IMG = "<script>alert(1)</script>", "<img src=x onerror=alert(2)>"
MARKUP = f"I wrote {SCRIPT} and {IMG} today."
TITLE = "<script>alert(3)</script> plans"
STATUSES = "NEW ANALYZING ANALYZED ASSEMBLING READY RESPONDING COMPLETED"


def send(page: Any, text: str) -> str:
    """Send a message on the chat page; returns the run id once its strip shows COMPLETED."""
    before = page.locator(".msg.assistant").count()
    n = page.locator(".run-status").count()  # the new message's strip comes after these
    page.fill("#message", text)
    page.click("#send")
    page.wait_for_function("n => document.querySelectorAll('.run-status')[n]?.dataset.final", arg=n)
    strip = page.locator(".run-status").nth(n)
    assert strip.get_attribute("data-final") == "COMPLETED"
    page.locator(".msg.assistant").nth(before).wait_for()
    run_id: str = strip.get_attribute("data-run") or ""
    return run_id


def close_thread(page: Any) -> None:
    page.click("#close-thread")
    page.locator("#archive[data-state=done]").wait_for()


def test_pages_need_a_login_and_the_session_cookie_is_strict(
    site: Site, page: Any, console: Console
) -> None:
    console.allow(401)  # the refused key
    for path in ("/", "/ui/chat", "/ui/runs", "/ui/memories", "/ui/tests"):
        page.goto(site.url + path)
        assert "/ui/login" in page.url, path
    page.fill("#api-key", "maas_not-a-key")
    page.click("#login-button")
    assert page.locator(".error").inner_text() == "Unknown or revoked API key."
    login(page, site, "alice", "/ui/memories")
    [cookie] = page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (
        "maas_session",
        True,
        "Strict",
    )
    assert cookie["value"] not in site.keys.values()  # a session token, never the key
    page.click("text=Log out")
    page.wait_for_url("**/ui/login")
    page.goto(site.url + "/ui/chat")
    assert "/ui/login" in page.url


def test_chat_live_status_then_inspector_with_stages_and_memories(site: Site, page: Any) -> None:
    login(page, site, "alice")
    page.fill("#new-thread-title", "Pets")
    page.click("#new-thread")
    page.wait_for_url("**/ui/chat?thread=*")
    send(page, "My cat Miso is allergic to chicken. Miso lives in Lisbon with me.")
    seen = page.locator(".run-status[data-final]").last.get_attribute("data-seen")
    assert seen == STATUSES  # every status arrived over SSE, in order
    close_thread(page)
    archived = page.locator("#archive-list li")
    assert archived.count() >= 1 and "Miso" in page.inner_text("#archive-list")

    page.click("text=+ Start without a thread")
    page.wait_for_url(re.compile(r".*/ui/chat$"))
    run_id = send(page, "What is my cat Miso allergic to?")
    answer = page.locator(".msg.assistant").last
    assert "offline mode" in answer.inner_text() and "chicken" in answer.inner_text()
    assert answer.locator(".used li").count() >= 1
    assert page.locator("#thread-title").inner_text() == "What is my cat Miso allergic to?"
    assert "offline mode" in page.inner_text("#mode-badge")

    answer.locator("a.run-link").click()
    page.wait_for_url(f"**/ui/runs/{run_id}")
    assert page.inner_text("#run-status") == "COMPLETED"
    labels = page.locator("#timeline svg .row text.label").all_text_contents()
    assert {"analyzer", "assembler", "responder"} <= set(labels)
    assert page.locator("#stage-times td[data-stage=total]").inner_text().endswith("ms")
    assert "allergic" in page.locator("#analyzer .chip").all_inner_texts()
    used = page.locator("#memories tr.used")
    assert used.count() >= 1 and "Miso" in used.first.inner_text()
    assert re.search(r"\d+\s+tokens\s+of a budget of\s+\d+", page.inner_text("#context-tokens"))
    assert page.locator("#llm-calls tbody tr").count() >= 1
    used.first.locator("a").first.click()  # provenance: back to the thread the memory came from
    page.wait_for_url("**/ui/chat?thread=*")
    assert "Miso" in page.inner_text("#messages")


def test_memory_browser_search_provenance_delete(site: Site, page: Any) -> None:
    with site.api("alice") as alice:
        told = alice.post("/v1/chat", json={"message": "I play the cello every Sunday."}).json()
        archive(alice, told["thread_id"])
    login(page, site, "alice", "/ui/memories")
    page.fill("#memory-query", "cello")
    page.check("#memory-exact")
    page.click("#memory-search")
    page.wait_for_url("**q=cello*")
    rows = page.locator("#memory-table tbody tr")
    assert rows.count() == 1 and "cello" in rows.first.inner_text()
    assert "still valid" in rows.first.inner_text()
    assert rows.first.locator("a", has_text="message #").count() == 1
    rows.first.locator("summary").click()
    rows.first.locator("button.confirm-delete").click()
    page.wait_for_url("**/ui/memories?q=cello&exact=1&deleted=*")
    assert page.locator("#no-memories").inner_text() == "Nothing matches."


def test_stored_markup_is_shown_as_text_and_never_runs(site: Site, page: Any) -> None:
    with site.api("alice") as alice:
        thread = alice.post("/v1/threads", json={"title": TITLE}).json()["thread_id"]
        told = alice.post("/v1/chat", json={"message": MARKUP, "thread_id": thread}).json()
        archive(alice, thread)
    login(page, site, "alice", f"/ui/chat?thread={thread}")
    resp = page.goto(f"{site.url}/ui/chat?thread={thread}")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert page.inner_text("#thread-title") == TITLE
    assert MARKUP in page.inner_text("#messages")
    memory = page.inner_text("#archive-list")  # the archivist's own wording, markup kept as text
    assert SCRIPT in memory and IMG in memory
    page.goto(f"{site.url}/ui/runs/{told['run_id']}")
    assert page.inner_text("#run-query") == MARKUP
    page.goto(f"{site.url}/ui/memories?q=wrote&exact=1")
    assert SCRIPT in page.inner_text("#memory-table") and IMG in page.inner_text("#memory-table")
    page.goto(f"{site.url}/ui/runs")
    assert SCRIPT in page.inner_text("#run-table")
    for url in ("/ui/chat", "/ui/memories", "/ui/runs"):
        page.goto(site.url + url)
        scripts = page.locator("script").evaluate_all("s => s.map(e => e.src || e.textContent)")
        assert all(s.startswith(site.url + "/ui/static/") for s in scripts), scripts
        assert page.locator("img[src=x]").count() == 0
    # the `context` fixture fails the test if any dialog opened or any console error was logged


def test_user_b_sees_nothing_of_alice_and_admin_reads_read_only(
    site: Site, page: Any, console: Console
) -> None:
    console.allow(403, 404)
    with site.api("alice") as alice:
        told = alice.post("/v1/chat", json={"message": "My locker code is 48170926."}).json()
    login(page, site, "bob", "/ui/runs")
    assert "48170926" not in page.inner_text("main")
    resp = page.goto(f"{site.url}/ui/runs/{told['run_id']}")
    assert resp.status == 404 and "48170926" not in page.content()
    resp = page.goto(f"{site.url}/ui/chat?thread={told['thread_id']}")
    assert resp.status == 404 and "48170926" not in page.content()
    page.click("text=Log out")
    page.wait_for_url("**/ui/login")

    login(page, site, "admin", f"/ui/runs/{told['run_id']}")
    assert page.inner_text("#run-query") == "My locker code is 48170926."
    assert "alice" in page.inner_text("#run .facts")
    page.goto(f"{site.url}/ui/runs")
    row = page.locator("#run-table tr", has=page.locator(f"a[href='/ui/runs/{told['run_id']}']"))
    assert "alice" in row.inner_text()  # every user's runs, each with its user
    resp = page.goto(f"{site.url}/ui/memories")
    assert resp.status == 403 and "read-only" in page.inner_text("main")
    page.goto(f"{site.url}/ui/chat")
    page.wait_for_url("**/ui/runs")


def archive(client: httpx.Client, thread_id: str) -> None:
    """Close a thread and wait (bounded) until the archivist has finished with it."""
    assert client.post(f"/v1/threads/{thread_id}/close").status_code == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        thread = client.get(f"/v1/threads/{thread_id}").json()
        if thread["archived_upto"] >= max(m["id"] for m in thread["messages"]):
            return
        time.sleep(0.05)
    raise AssertionError("archivist did not finish within 20 s")


def test_test_runner_runs_a_suite_in_mock_mode_and_it_passes(site: Site, page: Any) -> None:
    login(page, site, "alice", "/ui/tests")
    suite = page.locator("#suites li.suite[data-suite=memory-across-threads]")
    suite.wait_for()
    assert page.locator("#suites li.suite").count() >= 3
    assert page.input_value("#suite-mode") == "mock"
    suite.locator("button.run-suite").click()
    page.locator("#current:not([data-status=running])[data-status]").wait_for(timeout=60_000)
    assert page.get_attribute("#current", "data-status") == "passed", page.inner_text("#current")
    steps = page.locator("#steps li.test-step")
    assert steps.count() == page.locator("#steps li.test-step.pass").count() >= 3
    assert page.locator("#steps .checks tr.pass").count() >= 1
    page.locator("#test-history tbody tr").first.wait_for()
    assert "memory-across-threads" in page.inner_text("#test-history")
    link = page.locator("#steps a.run-link").last
    run_id = (link.get_attribute("href") or "").rsplit("/", 1)[-1]
    link.click()  # a throwaway test user's run, readable by the test run's owner
    page.wait_for_url(f"**/ui/runs/{run_id}")
    assert page.inner_text("#run-status") == "COMPLETED"


def test_inspector_shows_the_error_and_attempts_of_a_failed_run(
    site: Site, web_db: str, page: Any
) -> None:
    with site.api("bob") as bob:
        run_id = bob.post("/v1/chat", json={"message": "Tell me about <b>bold</b> plans."}).json()[
            "run_id"
        ]
    # What the runner records after the last attempt (the offline model never fails by itself).
    execute(
        web_db,
        "UPDATE maas.pipeline_runs SET status = 'FAILED', attempts = 3,"
        " error = 'responder: <i>timeout</i> after 3 attempts' WHERE id = $1::text::uuid",
        run_id,
    )
    login(page, site, "bob", f"/ui/runs/{run_id}")
    assert page.inner_text("#run-status") == "FAILED"
    error = page.inner_text("#run-error")
    assert "after 3 attempts" in error and "<i>timeout</i>" in error
    assert "FAILED" in page.locator("#history").inner_text()
