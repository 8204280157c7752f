"""A hostile tenant against a real `maas serve` process: what must not freeze or exhaust it."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def serve_env(db_url: str, **extra: str) -> dict[str, str]:
    return {
        "MAAS_DATABASE_URL": db_url,
        "MAAS_ADMIN_KEY": ADMIN_KEY,
        "MAAS_MIGRATE_ON_START": "false",
        "MAAS_POLL_S": "0.3",
        "MAAS_EMBEDDER": "none",
        "MAAS_IDLE_SCAN_S": "600",
        **extra,
    }


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    started = Server(tmp_path / "data", serve_env(db_url)).start()
    try:
        yield started
    finally:  # SIGKILL: a process whose loop is frozen never handles SIGTERM
        if started.proc is not None and started.proc.poll() is None:
            started.kill(signal.SIGKILL)


def user_client(server: Server, name: str) -> httpx.Client:
    made = httpx.post(f"{server.url}/v1/admin/users", json={"name": name}, headers=ADMIN)
    assert made.status_code == 201, made.text
    return server.client(made.json()["api_key"])


A_RUN = "a" * 40  # Python's re needs ~2^40 steps for (a+)+$ on this followed by "!": a day
EVIL_SUITE: dict[str, Any] = {
    "name": "evil-regex",
    "steps": [
        {"action": "send", "user": "u", "thread": "t", "message": f"My code word is {A_RUN}!"},
        {
            "action": "close",
            "user": "u",
            "thread": "t",
            "expect": {
                "memory_stored": ["code word"],
                "memory_not_stored": [{"regex": "(a+)+$"}],
            },
        },
    ],
}


def test_catastrophic_regex_neither_freezes_the_service_nor_fails_the_suite(
    server: Server,
) -> None:
    """The matcher runs on the serving process's event loop: with a backtracking engine the
    close step's check never ends and /health stops answering; with RE2 the suite passes and
    /health answers all along (a health request that gets no answer in 10 s fails the test)."""
    mallory = user_client(server, "mallory")
    started = mallory.post("/v1/test-runs", json={"suite_def": EVIL_SUITE, "mode": "mock"})
    assert started.status_code == 202, started.text
    answered_while_running = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        health = httpx.get(f"{server.url}/health", timeout=10)
        assert health.status_code == 200
        detail = mallory.get(f"/v1/test-runs/{started.json()['id']}", timeout=10).json()
        if detail["status"] != "running":
            break
        answered_while_running += 1
        time.sleep(0.05)
    assert detail["status"] == "passed", detail
    checks = {c["name"]: c["passed"] for s in detail["steps"] for c in s["checks"]}
    assert checks["memory_not_stored"] and checks["memory_stored"]
    assert answered_while_running >= 1
