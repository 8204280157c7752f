"""The test runner page in a real browser: Run is disabled while a suite runs, the panel never
shows the previous suite's result for the new one, the history row keeps up with the steps, and
an unknown test-run id says so instead of an empty card."""

from __future__ import annotations

import re
import uuid
from typing import Any

from tests.browser.conftest import Console, Site, login

# Every change of the panel or of the history, as the browser saw it.
WATCH = """() => {
  window.__states = [];
  const record = () => {
    const id = document.querySelector('#current')?.dataset.id;
    const row = id && document.querySelector(`#test-history tr[data-id="${id}"] td:nth-child(3)`);
    window.__states.push({
      url: location.search,
      title: document.querySelector('#current-title').textContent,
      status: document.querySelector('#current-status').textContent,
      counts: document.querySelector('#current-counts').textContent,
      history: row ? row.textContent : null,
      disabled: [...document.querySelectorAll('button.run-suite')].map(b => b.disabled),
    });
  };
  const all = {subtree: true, childList: true, characterData: true, attributes: true};
  new MutationObserver(record).observe(document.body, all);
}"""


def passed_in(text: str, pattern: str) -> int:
    found = re.search(pattern, text)
    assert found, (pattern, text)
    return int(found.group(1))


def test_one_suite_at_a_time_and_the_panel_and_history_keep_up(site: Site, page: Any) -> None:
    login(page, site, site.new_user("runner"), "/ui/tests")
    first = page.locator("#suites li.suite[data-suite=user-isolation] button.run-suite")
    first.click()
    page.locator("#current[data-status=passed]").wait_for(timeout=60_000)
    assert "user-isolation" in page.inner_text("#current-title")

    before = page.evaluate("location.search")
    page.evaluate(WATCH)
    second = page.locator("#suites li.suite[data-suite=memory-across-threads] button.run-suite")
    second.click()
    page.wait_for_function(
        "() => document.querySelector('#current-title').textContent.includes('memory-across')"
        " && document.querySelector('#current').dataset.status !== 'running'",
        timeout=60_000,
    )
    states = page.evaluate("window.__states")
    # from the moment the page is on the new run, the panel shows the new suite
    moved = [s for s in states if s["url"] != before]
    assert moved and all("memory-across-threads" in s["title"] for s in moved), moved[:2]
    mine = [s for s in states if "memory-across-threads" in s["title"]]
    assert mine and mine[0]["status"] == "running", mine[:3]  # never the first suite's "passed"
    assert all(s["status"] in ("running", "passed") for s in mine), {s["status"] for s in mine}
    running = [s for s in states if s["status"] == "running"]
    assert running and all(all(s["disabled"]) for s in running)  # no second Run meanwhile
    for s in mine:  # the history row says what the panel says, at every update
        if s["history"] is not None:
            assert passed_in(s["history"], r"(\d+)✓") == passed_in(s["counts"], r"(\d+) passed")
    assert passed_in(mine[-1]["history"], r"(\d+)✓") >= 3
    assert not any(page.locator("button.run-suite").evaluate_all("bs => bs.map(b => b.disabled)"))


def test_an_unknown_test_run_says_so(site: Site, page: Any, console: Console) -> None:
    console.allow(404)
    login(page, site, "alice", f"/ui/tests?run={uuid.uuid4()}")
    error = page.locator("#tests-error")
    error.wait_for()
    assert "No test run" in error.inner_text() and "not found" in error.inner_text()
    assert page.locator("#current").is_hidden()
