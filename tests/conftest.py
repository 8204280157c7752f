"""Real Postgres for every test: one migrated template per session, a fresh database per test."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from bench.database import admin_sql, with_database
from bench.harness import ADMIN_KEY
from bench.scripted_llm import ScriptedLLM
from maas.app import create_app
from maas.db.migrate import migrate
from maas.llm.tokens import seed_tiktoken_cache
from maas.params import BuiltinParams
from maas.settings import Settings

# One per xdist worker: workers sharing MAAS_TEST_DATABASE_URL would drop each other's.
TEMPLATE = f"maas_test_template_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def pytest_configure(config: pytest.Config) -> None:
    """Each session its own base directory. pytest's numbered ones keep only the last three, so
    sessions running side by side on one machine deleted each other's embedded database."""
    if config.option.basetemp:
        return
    base = tempfile.mkdtemp(prefix="maas-pytest-")
    config.option.basetemp = base
    config.add_cleanup(lambda: shutil.rmtree(base, ignore_errors=True))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked slow first (a stable sort: otherwise in file order): xdist hands out the
    tests in this order, so a minutes-long test that started last would run alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def pg_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """MAAS_TEST_DATABASE_URL (any Postgres with pgvector) or an embedded server for the session."""
    seed_tiktoken_cache(tmp_path_factory.mktemp("tiktoken"))
    external = os.environ.get("MAAS_TEST_DATABASE_URL")
    if external:
        yield external
        return
    from maas.db.embedded import start_embedded

    yield start_embedded(tmp_path_factory.mktemp("pg-session"))


@pytest.fixture(scope="session")
def template_uri(pg_uri: str) -> str:
    async def build() -> None:
        await admin_sql(pg_uri, f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        await admin_sql(pg_uri, f"CREATE DATABASE {TEMPLATE}")
        conn = await asyncpg.connect(with_database(pg_uri, TEMPLATE))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(build())
    return with_database(pg_uri, TEMPLATE)


@pytest.fixture
def db_url(pg_uri: str, template_uri: str) -> Iterator[str]:
    """A fresh migrated database for one test, copied from the template."""
    name = f"maas_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(admin_sql(pg_uri, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
    yield with_database(pg_uri, name)
    asyncio.run(admin_sql(pg_uri, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def scripted() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


def test_settings(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": db_url,
        "data_dir": tmp_path,
        "admin_key": ADMIN_KEY,
        "poll_s": 0.2,
        "lease_s": 5.0,
        "max_attempts": 3,
        "backoff_base_s": 0.05,
        "backoff_max_s": 0.2,
        "probe_s": 1.0,
        "migrate_on_start": False,
        "shutdown_grace_s": 2.0,
        "chat_wait_s": 20.0,
        "idle_scan_s": 0.5,
        "embedder": "none",  # tests that need vectors ask for them
        # the browser and web tests log many users in from one address; test_sessions checks
        # the limit itself
        "login_attempts_per_min": 1000.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Api:
    """An in-process service with an HTTP client; `user()` makes a user and its client."""

    def __init__(self, app: Any, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    @property
    def service(self) -> Any:
        return self.app.state.service

    async def user(self, name: str = "alice") -> httpx.AsyncClient:
        resp = await self.client.post(
            "/v1/admin/users", json={"name": name}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert resp.status_code == 201, resp.text
        key = resp.json()["api_key"]
        return httpx.AsyncClient(
            transport=self.client._transport,
            base_url="http://maas",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )


@asynccontextmanager
async def running_api(
    settings: Settings, params: BuiltinParams | None = None
) -> AsyncIterator[Api]:
    app = create_app(settings, params)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://maas", timeout=30) as c:
            yield Api(app, c)


@pytest.fixture
def make_api(db_url: str, tmp_path: Path) -> Callable[..., Any]:
    """`async with make_api(**settings_overrides) as api:` — the real app on the test database."""

    def factory(params: BuiltinParams | None = None, **overrides: Any) -> Any:
        return running_api(test_settings(db_url, tmp_path, **overrides), params)

    return factory
