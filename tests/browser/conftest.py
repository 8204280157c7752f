"""Browser tests: the real app (with the web extension) served by uvicorn on a free port, on a real
Postgres database, driven by headless Debian Chromium through Playwright.

One server, one database and one browser for the whole session keep the suite to seconds; each
test gets a fresh browser context (own cookies) and fails on any console error or page exception.
Tests share the site, so each makes the users it needs (`Site.add_user`, unique names) or uses
alice and bob only for what no other test counts."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn

from bench.database import admin_sql, with_database
from maas.app import create_app
from tests.conftest import ADMIN_KEY, TEMPLATE, test_settings
from tests.e2e.conftest import free_port
from web.extension import extend

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}


_serial = itertools.count(1)


@dataclass
class Site:
    url: str
    dsn: str = ""  # its database (for a test that sets up rows no API makes)
    keys: dict[str, str] = field(default_factory=dict)

    def api(self, who: str) -> httpx.Client:
        key = ADMIN_KEY if who == "admin" else self.keys[who]
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def new_user(self, stem: str) -> str:
        """A user of this test's own (the site is shared by the session): its name."""
        name = f"{stem}{next(_serial)}"
        self.add_user(name)
        return name

    def add_user(self, name: str) -> str:
        with self.api("admin") as admin:
            resp = admin.post("/v1/admin/users", json={"name": name})
        assert resp.status_code == 201, resp.text
        self.keys[name] = resp.json()["api_key"]
        return self.keys[name]


@pytest.fixture(scope="session")
def web_db(pg_uri: str, template_uri: str) -> Iterator[str]:
    name = f"maas_web_{uuid.uuid4().hex[:12]}"
    off_loop(admin_sql(pg_uri, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
    yield with_database(pg_uri, name)
    off_loop(admin_sql(pg_uri, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture(scope="session")
def site(web_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """uvicorn in a thread (it skips signal handlers off the main thread). Local embeddings, as
    `maas serve` has them: the memory browser searches by meaning."""
    settings = test_settings(
        web_db, tmp_path_factory.mktemp("web"), rate_limit_per_min=0, embedder="local"
    )
    app = create_app(settings, extensions=[extend])
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # the local model loads first: slow on a busy box
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    built = Site(f"http://127.0.0.1:{port}", web_db)
    built.add_user("alice")
    built.add_user("bob")
    yield built
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture(scope="package")  # its loop runs in the main thread: gone before other packages
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"browser tests need Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Console:
    """Console errors and uncaught exceptions of every page of a context."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.allowed: set[int] = set()

    def allow(self, *statuses: int) -> None:
        """A test that opens a 401/403/404 page on purpose: the browser logs its status."""
        self.allowed.update(statuses)

    def unexpected(self) -> list[str]:
        expected = {f"status of {s} " for s in self.allowed}
        return [e for e in self.errors if not any(x in e for x in expected)]

    def watch(self, page: Any) -> None:
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def context(browser: Any, console: Console) -> Iterator[Any]:
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()
    assert console.unexpected() == [], console.errors
    assert console.dialogs == [], console.dialogs


@pytest.fixture
def page(context: Any, console: Console) -> Any:
    new = context.new_page()
    console.watch(new)
    return new


def login(page: Any, site: Site, who: str, next_path: str = "/ui/chat") -> None:
    page.goto(f"{site.url}{next_path}")
    page.wait_for_url("**/ui/login**")
    page.fill("#api-key", ADMIN_KEY if who == "admin" else site.keys[who])
    page.click("#login-button")
    page.wait_for_url(lambda url: url.endswith(next_path))


def off_loop(work: Coroutine[Any, Any, Any]) -> Any:
    """Runs a coroutine on a thread of its own: Playwright's sync API owns this thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result(timeout=30)


def execute(dsn: str, sql: str, *args: Any) -> Any:
    """One statement, off Playwright's loop; returns fetchval's value."""

    async def go() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    return off_loop(go())
