"""Test runs as background work of the service (a built-in extension: it gets the host).

A test run's row is the truth: it is `running` while a process renews its heartbeat; the sweep
(at start-up and on a timer) ends any whose process stopped as `error`, so a crash or restart
never leaves one running. A graceful shutdown cancels the engines and marks their runs at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from maas.db.queries import q
from maas.errors import Conflict
from maas.host import ExtensionHost
from maas.runtime.loops import every
from maas.testsuite.engine import Engine, StepResult
from maas.testsuite.suite import Suite

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
LEASE_S = 45.0  # a running test run not renewed for this long was interrupted
MAX_RUNNING = 3  # per owner: a test run makes users and runs, so it is not free


@dataclass
class TestRuns:
    host: ExtensionHost
    tasks: dict[uuid.UUID, asyncio.Task[None]] = field(default_factory=dict)

    async def start(self, owner: uuid.UUID | None, suite: Suite, mode: str) -> dict[str, Any]:
        """Record the test run as running and start its engine in the background."""
        pool = self.host.pool
        if await pool.fetchval(q("count_running_test_runs"), owner) >= MAX_RUNNING:
            raise Conflict(f"{MAX_RUNNING} test runs are running already; wait for one to end")
        row = await pool.fetchrow(
            q("insert_test_run"),
            owner,
            suite.name,
            suite.digest(),
            json.loads(suite.model_dump_json()),
            mode,
            len(suite.steps),
            self.host.worker_id,
            LEASE_S,
        )
        task = asyncio.create_task(self._execute(row["id"], suite, mode), name=f"test-{row['id']}")
        self.tasks[row["id"]] = task
        task.add_done_callback(lambda _: self.tasks.pop(row["id"], None))
        return dict(row)

    async def _execute(self, test_run_id: uuid.UUID, suite: Suite, mode: str) -> None:
        host = self.host

        async def record(result: StepResult) -> None:
            await _record(host.pool, test_run_id, result)

        engine = Engine(host, host.app, test_run_id, suite, mode == "mock", record)
        try:
            passed = await engine.run()
            await _finish(host.pool, test_run_id, "passed" if passed else "failed", None)
        except asyncio.CancelledError:
            await asyncio.shield(_finish(host.pool, test_run_id, "error", "interrupted: shutdown"))
            raise
        except Exception as exc:  # task boundary: the run says what broke
            log.exception("test run %s crashed", test_run_id)
            await _finish(host.pool, test_run_id, "error", f"{type(exc).__name__}: {exc}"[:1000])

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Supervised: sweep interrupted runs, renew ours; on stop, end ours as errors."""
        try:
            await every(HEARTBEAT_S, self._tick, stop, "test runs heartbeat")
        finally:
            if stop.is_set():  # not on a crash: the supervisor restarts this loop
                await self._cancel_all()

    async def _tick(self) -> None:
        pool = self.host.pool
        if self.tasks:
            await pool.execute(q("renew_test_runs"), list(self.tasks), LEASE_S)
        stale = await pool.fetch(q("interrupt_stale_test_runs"))
        if stale:
            log.warning("marked %d interrupted test run(s) as error", len(stale))

    async def _cancel_all(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)


async def _record(pool: Any, test_run_id: uuid.UUID, r: StepResult) -> None:
    await pool.execute(
        q("insert_test_step"),
        test_run_id,
        r.index,
        r.action,
        r.description,
        r.user,
        r.thread,
        _uuid(r.run_id),
        _uuid(r.thread_id),
        r.passed,
        [c.as_dict() for c in r.checks],
        r.ms,
    )


async def _finish(pool: Any, test_run_id: uuid.UUID, status: str, error: str | None) -> None:
    await pool.execute(q("finish_test_run"), test_run_id, status, error)


def _uuid(value: str | None) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(value)


def install(host: ExtensionHost) -> TestRuns:
    """Called by create_app: the manager is a supervised task of the service."""
    manager = TestRuns(host)
    host.app.state.test_runs = manager
    host.add_task("test-runs", manager.run_forever)
    return manager
