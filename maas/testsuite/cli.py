"""`maas test-suite run FILE`: run a suite file on a running service and report per step.

The file is validated here first (errors name the file and field), then sent as an inline suite
to POST /v1/test-runs; the service runs it, and this client polls and prints each step as it ends.
Exit code: 0 passed, 1 failed (or the run ended in error), 2 the suite or the service is unusable.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from maas.cli_support import admin_key
from maas.settings import Settings
from maas.testsuite.suite import SuiteError, load_file

POLL_S = 0.5


def run_file(
    file: Path,
    mode: str,
    url: str | None,
    key: str | None,
    settings: Settings,
    report: Path | None = None,
    timeout_s: float = 900.0,
) -> int:
    try:
        load_file(file, match_name=False)
    except SuiteError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    key = key or admin_key(settings)
    if not key:
        print(
            "no API key: pass --key, set MAAS_ADMIN_KEY or run `maas serve` once", file=sys.stderr
        )
        return 2
    base = url or f"http://{settings.host}:{settings.port}"
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        try:
            detail = _run(client, json.loads(file.read_text()), mode, timeout_s)
        except (httpx.HTTPError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if report is not None:
        report.write_text(json.dumps(detail, indent=2))
    return 0 if detail["status"] == "passed" else 1


def _run(client: httpx.Client, suite: Any, mode: str, timeout_s: float) -> dict[str, Any]:
    started = client.post("/v1/test-runs", json={"suite_def": suite, "mode": mode})
    if started.status_code != 202:
        raise RuntimeError(f"{started.status_code} {started.text}")
    run = started.json()
    print(f"suite {run['suite']}: {run['steps_total']} steps, {mode} mode, test run {run['id']}")
    shown = 0
    deadline = time.monotonic() + timeout_s
    while True:
        resp = client.get(f"/v1/test-runs/{run['id']}")
        resp.raise_for_status()
        detail: dict[str, Any] = resp.json()
        for step in detail["steps"][shown:]:
            _print_step(step, detail["steps_total"])
        shown = len(detail["steps"])
        if detail["status"] != "running":
            _print_summary(detail)
            return detail
        if time.monotonic() > deadline:
            raise RuntimeError(f"test run {run['id']} still running after {timeout_s:.0f}s")
        time.sleep(POLL_S)


def _print_step(step: dict[str, Any], total: int) -> None:
    verdict = "PASS" if step["passed"] else "FAIL"
    print(f"[{step['index'] + 1}/{total}] {verdict} {step['description']} ({step['ms']:.0f} ms)")
    for check in step["checks"]:
        if not check["passed"]:
            print(
                f"      x {check['name']}: expected {check['expected']!r}, got {check['actual']!r}"
            )
    if not step["passed"] and step.get("run_id"):
        print(f"      run {step['run_id']} (GET /v1/runs/{step['run_id']})")


def _print_summary(detail: dict[str, Any]) -> None:
    total = detail["steps_total"]
    if detail["status"] == "passed":
        print(f"passed: {detail['passed']}/{total} steps")
    elif detail["status"] == "failed":
        print(f"failed: {detail['failed']} of {total} steps failed")
    else:
        print(f"error: {detail.get('error')} ({detail['passed']}/{total} steps passed)")
