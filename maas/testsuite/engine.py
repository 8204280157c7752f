"""Runs one suite against the service through its own HTTP API, in-process.

Each logical user is a fresh user made for this test run (pinned to offline mode in mock mode);
every step goes through the routes a real client calls (POST /v1/chat, /v1/threads/...), and is
checked on what GET /v1/runs/{id} and GET /v1/memories return.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from maas.credentials import hash_key, new_key
from maas.db.queries import q
from maas.host import ExtensionHost
from maas.pipeline.status import is_done
from maas.testsuite.checks import Check, close_checks, request_failed, send_checks
from maas.testsuite.patterns import Budget
from maas.testsuite.suite import Close, Import, Send, Suite, describe

CLIENT_HEADER = {"X-MaaS-Client": "test-runner"}
PATTERN_BUDGET_S = 10.0  # search time of one test run's regex matchers, in all
# Checks run here, off the event loop: every test run of the process shares these two threads, so
# pattern searches take at most two cores' worth of time whatever the tenants submit.
CHECKS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="maas-checks")


@dataclass
class Actor:
    name: str
    user_id: uuid.UUID
    client: httpx.AsyncClient
    threads: dict[str, str] = field(default_factory=dict)  # logical name -> thread id


@dataclass
class StepResult:
    index: int
    action: str
    description: str
    user: str
    thread: str
    checks: list[Check]
    run_id: str | None = None
    thread_id: str | None = None
    ms: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)


Record = Callable[[StepResult], Awaitable[None]]


class StepFailed(Exception):
    """A request of the step was refused: the step fails with this check, the suite goes on."""

    def __init__(self, check: Check) -> None:
        super().__init__(check.actual)
        self.check = check


@dataclass
class Engine:
    host: ExtensionHost
    app: Any  # the ASGI app of this very service
    test_run_id: uuid.UUID
    suite: Suite
    mock: bool
    record: Record
    actors: dict[str, Actor] = field(default_factory=dict)
    budget: Budget = field(default_factory=lambda: Budget(PATTERN_BUDGET_S))

    async def run(self) -> bool:
        """Every step in order; True when all passed."""
        transport = httpx.ASGITransport(app=self.app)
        try:
            await self._make_users(transport)
            results = [await self._step(i, step) for i, step in enumerate(self.suite.steps)]
        finally:
            await self.close()
        return all(r.passed for r in results)

    async def _make_users(self, transport: httpx.AsyncBaseTransport) -> None:
        for name in dict.fromkeys(step.user for step in self.suite.steps):
            key = new_key()
            user_id = await self.host.pool.fetchval(
                q("insert_test_user"),
                self.test_run_id,
                name,
                f"test {self.suite.name}/{name}"[:200],
                hash_key(key),
                key[:12],
                "offline" if self.mock else None,
            )
            headers = {"Authorization": f"Bearer {key}", **CLIENT_HEADER}
            client = httpx.AsyncClient(transport=transport, base_url="http://maas", headers=headers)
            self.actors[name] = Actor(name, user_id, client)

    async def _step(self, index: int, step: Send | Import | Close) -> StepResult:
        actor = self.actors[step.user]
        result = StepResult(index, step.action, describe(step), step.user, step.thread, [])
        started = time.perf_counter()
        try:
            if isinstance(step, Send):
                await self._send(actor, step, result)
            elif isinstance(step, Import):
                await self._import(actor, step, result)
            else:
                await self._close(actor, step, result)
        except StepFailed as exc:
            result.checks.append(exc.check)
        result.thread_id = actor.threads.get(step.thread)
        result.ms = round((time.perf_counter() - started) * 1000, 1)
        await self.record(result)
        return result

    async def _send(self, actor: Actor, step: Send, result: StepResult) -> None:
        body = {"message": step.message, "thread_id": actor.threads.get(step.thread)}
        sent = await _call(actor.client, "POST", "/v1/chat", "send", json=body)
        actor.threads[step.thread] = sent["thread_id"]
        result.run_id = sent["run_id"]
        detail = await self._finished_run(actor, sent["run_id"])
        result.checks += await self._checked(send_checks, step.expect, detail)

    async def _finished_run(self, actor: Actor, run_id: str) -> dict[str, Any]:
        """The run detail once the run is done (or the wait is over: the checks then say so)."""
        deadline = time.monotonic() + self.host.settings.chat_wait_s
        while True:
            detail = await _call(actor.client, "GET", f"/v1/runs/{run_id}", "read the run")
            if is_done(detail["status"], detail["stop_at"]) or time.monotonic() > deadline:
                return detail
            await asyncio.sleep(min(self.host.settings.poll_s, 0.25))

    async def _thread(self, actor: Actor, name: str) -> str:
        if name not in actor.threads:
            made = await _call(actor.client, "POST", "/v1/threads", "create", json={"title": name})
            actor.threads[name] = made["thread_id"]
        return actor.threads[name]

    async def _import(self, actor: Actor, step: Import, result: StepResult) -> None:
        thread = await self._thread(actor, step.thread)
        messages = [m.model_dump(mode="json", exclude_none=True) for m in step.messages]
        url = f"/v1/threads/{thread}/messages"
        done = await _call(actor.client, "POST", url, "import", json={"messages": messages})
        n = len(done["message_ids"])
        result.checks.append(Check("imported", n == len(messages), str(len(messages)), str(n)))

    async def _close(self, actor: Actor, step: Close, result: StepResult) -> None:
        if step.thread not in actor.threads:
            missing = Check("thread", False, f"thread {step.thread} exists", "no such thread yet")
            raise StepFailed(missing)
        url = f"/v1/threads/{actor.threads[step.thread]}/close"
        closed = await _call(actor.client, "POST", url, "close")
        job = await self._archived(actor, closed["archive_job_id"])
        listed = await _call(actor.client, "GET", "/v1/memories?limit=500", "list memories")
        stored = [str(m["text"]) for m in listed["memories"]]
        result.checks += await self._checked(close_checks, step.expect, job, stored)

    async def _archived(self, actor: Actor, job_id: int | None) -> dict[str, Any]:
        """Wait for the archivist's job; no job means there was nothing new to archive."""
        if job_id is None:
            return {"status": "done", "memories_created": 0, "error": None}
        deadline = time.monotonic() + self.host.settings.chat_wait_s
        while True:
            row = await self.host.pool.fetchrow(q("archive_job_state"), job_id, actor.user_id)
            state = dict(row) if row else {"status": "missing", "error": None}
            if state["status"] in ("done", "failed", "missing") or time.monotonic() > deadline:
                return state
            await asyncio.sleep(min(self.host.settings.poll_s, 0.25))

    async def _checked(self, checks: Callable[..., list[Check]], *args: Any) -> list[Check]:
        """A step's checks in a worker thread, with this test run's pattern budget."""
        call = functools.partial(checks, *args, self.budget)
        return await asyncio.get_running_loop().run_in_executor(CHECKS, call)

    async def close(self) -> None:
        for actor in self.actors.values():
            await actor.client.aclose()


async def _call(
    client: httpx.AsyncClient, method: str, url: str, what: str, **kwargs: Any
) -> dict[str, Any]:
    resp = await client.request(method, url, timeout=None, **kwargs)
    if resp.status_code >= 400:
        raise StepFailed(request_failed(f"{what} ({method} {url})", resp.status_code, resp.text))
    body: dict[str, Any] = resp.json()
    return body
