"""Fault tests: real `maas serve` processes on one test database, small L (lease), P (poll), A."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server

LEASE_S = 2.0  # L
POLL_S = 0.3  # P
ATTEMPTS = 3  # A
GRACE_S = 3.0


def fault_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {
        "MAAS_DATABASE_URL": db_url,
        "MAAS_ADMIN_KEY": ADMIN_KEY,
        "MAAS_MIGRATE_ON_START": "false",
        "MAAS_LEASE_S": str(LEASE_S),
        "MAAS_POLL_S": str(POLL_S),
        "MAAS_MAX_ATTEMPTS": str(ATTEMPTS),
        "MAAS_BACKOFF_BASE_S": "0.1",
        "MAAS_BACKOFF_MAX_S": "0.5",
        "MAAS_PROBE_S": "1",
        "MAAS_SHUTDOWN_GRACE_S": str(GRACE_S),
        "MAAS_IDLE_SCAN_S": "600",
        "MAAS_EMBEDDER": "none",
        "MAAS_LOG_LEVEL": "INFO",
    }
    return env | extra


def llm_env(base_url: str, **extra: str) -> dict[str, str]:
    return {
        "MAAS_LLM_BASE_URL": base_url,
        "MAAS_LLM_API_KEY": "sk-test",
        "MAAS_LLM_MODEL": "scripted",
        "MAAS_LLM_TIMEOUT_S": "10",
        **extra,
    }


def sql(dsn: str, query: str, *args: Any) -> list[Any]:
    """Run one statement on the test database (outside any service) and return its rows."""

    async def go() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {result!r})")
        time.sleep(0.05)  # some conditions are moments: many runs mid-stage


def wait_status(client: httpx.Client, run_id: str, wanted: set[str], timeout: float = 30) -> Any:
    def check() -> Any:
        run = client.get(f"/v1/runs/{run_id}").json()
        return run if run["status"] in wanted else None

    return wait_for(check, timeout, f"run {run_id} reaching {wanted}")


def new_user(server: Server, name: str = "alice") -> httpx.Client:
    admin = server.client(ADMIN_KEY)
    resp = admin.post("/v1/admin/users", json={"name": name})
    assert resp.status_code == 201, resp.text
    return server.client(resp.json()["api_key"])


class Fleet:
    """Service processes started by one test; stopped (SIGCONT + SIGTERM) at its end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Server] = []

    def start(self, env: dict[str, str], name: str | None = None) -> Server:
        server = Server(self.root / (name or f"svc{len(self.started)}"), env)
        self.started.append(server)
        return server.start()

    def stop_all(self) -> None:
        for server in self.started:
            proc = server.proc
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for server in self.started:
            if server.proc is not None:
                try:
                    server.proc.wait(timeout=15)
                except Exception:  # a wedged process must not wedge the suite
                    server.proc.kill()
                    server.proc.wait(timeout=5)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    started = Fleet(tmp_path)
    yield started
    started.stop_all()


class OwnPostgres:
    """A Postgres cluster owned by one test, so the test can stop and start it."""

    def __init__(self, root: Path) -> None:
        from maas.db.embedded import start_embedded

        self.pgdata = root / "pg"
        self.uri = start_embedded(root)
        import pgserver

        self.server: Any = pgserver.get_server(self.pgdata)  # type: ignore[attr-defined]

    def stop(self) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[OwnPostgres]:
    pg = OwnPostgres(tmp_path / "own-pg")
    yield pg
    with contextlib.suppress(Exception):  # already stopped by the test
        pg.stop()


ENDED = (
    "SELECT count(*) FROM maas.pipeline_runs WHERE id = ANY($1::text[]::uuid[])"
    " AND status IN ('COMPLETED', 'FAILED')"
)
ONCE = """
SELECT r.id::text, r.status::text,
       (SELECT count(*) FROM maas.messages m WHERE m.run_id = r.id AND m.role = 'assistant')
         AS answers,
       (SELECT count(*) FROM maas.run_events e WHERE e.run_id = r.id AND e.status = 'COMPLETED')
         AS completions
FROM maas.pipeline_runs r WHERE r.id = ANY($1::text[]::uuid[])
"""


def wait_ended(dsn: str, run_ids: list[str], timeout: float) -> None:
    """Until every run is COMPLETED or FAILED (read from the database, not through a service)."""
    wait_for(lambda: sql(dsn, ENDED, run_ids)[0][0] == len(run_ids), timeout, "all runs ended")


def not_exactly_once(dsn: str, run_ids: list[str], events: bool = True) -> list[Any]:
    """The runs that were lost, failed, answered twice or completed twice (with `events`, the
    run_events the status trigger writes); [] when each completed exactly once."""
    rows = {r["id"]: r for r in sql(dsn, ONCE, run_ids)}
    lost = [(run_id, "lost") for run_id in run_ids if run_id not in rows]
    wanted = ("COMPLETED", 1, 1 if events else 0)
    odd = [
        (r["id"], r["status"], r["answers"], r["completions"])
        for r in rows.values()
        if (r["status"], r["answers"], r["completions"]) != wanted
    ]
    return lost + odd


def queue_runs(client: httpx.Client, n: int, text: str) -> list[str]:
    """n runs for the workers (wait=false: no request drives them), each in its own thread."""
    runs = []
    for i in range(n):
        resp = client.post("/v1/chat?wait=false", json={"message": f"{text} {i}"})
        assert resp.status_code == 202, resp.text
        runs.append(resp.json()["run_id"])
    return runs
