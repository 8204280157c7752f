"""Emulator runs inside the MaaS process: started by the admin API, recorded in
selflearn.emulator_runs, stopped on request or at shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from maas.errors import Conflict
from maas.host import ExtensionHost
from maas.runtime.loops import every
from selflearn.emulator.client import MaasClient
from selflearn.emulator.engine import Config, Emulation, Expectation, Tally, summary
from selflearn.emulator.paraphrase import LLMConfig, Paraphraser
from selflearn.emulator.seeds import load_personas, load_scenarios
from selflearn.queries import q
from selflearn.settings import SelflearnSettings

log = logging.getLogger(__name__)


@dataclass
class PoolRecorder:
    """Progress and expectations of one emulator run, written through MaaS's pool."""

    pool: Any
    run_id: uuid.UUID

    async def progress(self, tally: Tally) -> None:
        await self.pool.execute(
            q("emulator_progress"), self.run_id, tally.dialogs, tally.turns, tally.runs,
            tally.failures,
        )  # fmt: skip

    async def expectation(self, exp: Expectation) -> None:
        await self.pool.execute(
            q("emulator_record_expectation"), self.run_id, uuid.UUID(exp.user_id),
            uuid.UUID(exp.run_id), exp.persona, exp.scenario, exp.ability, exp.attempt,
            exp.question, exp.expected, exp.fact_ids, exp.planted, exp.retrieved, exp.recall_hit,
            exp.answer_hit, exp.answer,
        )  # fmt: skip


def own_url(host: ExtensionHost) -> str:
    """This process's own HTTP address (a wildcard bind is reached on the loopback)."""
    name = host.settings.host
    name = "127.0.0.1" if name in ("0.0.0.0", "", "::") else name
    return f"http://{f'[{name}]' if ':' in name else name}:{host.settings.port}"


@dataclass
class EmulatorRuns:
    host: ExtensionHost
    settings: SelflearnSettings
    transport: httpx.AsyncBaseTransport | None = None  # tests: the app in-process (ASGI)
    running: dict[uuid.UUID, tuple[asyncio.Task[None], asyncio.Event]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.settings.emulator_url or own_url(self.host)

    def pool(self) -> Any:
        return self.host.pool

    async def start(self, config: Config) -> dict[str, Any]:
        scenarios, personas = load_scenarios(), load_personas()  # a bad seed fails here, loudly
        rewriter = self._paraphraser() if config.paraphrase else None
        row = await self.pool().fetchrow(
            q("emulator_create_run"), config.seed, config.dialogs, config.concurrency, self.url
        )
        run_id: uuid.UUID = row["id"]
        label = f"emulator {run_id.hex[:8]}"  # the synthetic users' names start with it
        config = dataclasses.replace(config, label=label)
        emulation = Emulation(
            MaasClient(self._http(config), self.host.admin_key or "", self._archive_s()),
            PoolRecorder(self.pool(), run_id),
            config,
            scenarios,
            personas,
            rewriter=rewriter,
        )
        task = asyncio.create_task(self._run(run_id, emulation), name=f"emulator-{run_id}")
        self.running[run_id] = (task, emulation.stop)
        return dict(row)

    def _paraphraser(self) -> Paraphraser:
        """Paraphrasing uses the LLM MaaS is configured with; offline there is none."""
        cfg = self.host.settings
        if cfg.offline:
            raise Conflict("paraphrasing needs an LLM: MaaS runs in offline mode")
        key = cfg.llm_api_key.get_secret_value() if cfg.llm_api_key else "not-needed"
        return Paraphraser(LLMConfig(cfg.llm_base_url, key, cfg.llm_model, cfg.llm_timeout_s))

    def _http(self, config: Config) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            transport=self.transport,
            timeout=self.settings.emulator_request_timeout_s,
            limits=httpx.Limits(max_connections=config.concurrency * 2 + 2),
        )

    def _archive_s(self) -> float:
        return self.settings.emulator_archive_timeout_s

    async def _run(self, run_id: uuid.UUID, emulation: Emulation) -> None:
        status, error, result = "failed", None, None
        try:
            result = await emulation.run()
            status = "stopped" if emulation.stop.is_set() else "completed"
        except Exception as exc:  # noqa: BLE001 (task boundary: recorded on the row)
            log.warning("emulator run %s failed: %s: %s", run_id, type(exc).__name__, exc)
            error = f"{type(exc).__name__}: {exc}"[:1000]
            result = summary(emulation.tally, 0.0, emulation.stop.is_set())
        finally:
            await emulation.client.http.aclose()
            if isinstance(emulation.rewriter, Paraphraser):
                await emulation.rewriter.close()
            self.running.pop(run_id, None)
        await self._finish(run_id, status, result, error)

    async def _finish(self, run_id: uuid.UUID, status: str, result: Any, error: str | None) -> None:
        try:
            await self.pool().execute(q("emulator_finish"), run_id, status, result, error)
        except Exception as exc:  # noqa: BLE001 (shutting down: the pool may be closed already)
            log.warning("emulator run %s: could not record its end: %s", run_id, exc)

    async def beat(self) -> list[uuid.UUID]:
        """Heartbeat this process's runs; fail the stale ones of others. Returns those failed."""
        try:
            await self.pool().execute(q("emulator_heartbeat"), list(self.running))
            rows = await self.pool().fetch(q("emulator_fail_stale"), self.settings.emulator_stale_s)
        except Exception as exc:  # noqa: BLE001
            # the database may be briefly away; the next beat retries
            log.warning("emulator heartbeat failed: %s", exc)
            return []
        for row in rows:
            log.warning("emulator run %s ended as failed: its process stopped", row["id"])
        return [row["id"] for row in rows]

    def stop(self, run_id: uuid.UUID) -> bool:
        entry = self.running.get(run_id)
        if entry is not None:
            entry[1].set()
        return entry is not None

    async def stop_all_at_shutdown(self, stop: asyncio.Event) -> None:
        """Supervised job: keep this process's runs beating and end the runs of dead processes;
        when MaaS stops, ask every run to stop and give them a moment."""
        await every(self.settings.emulator_heartbeat_s, self.beat, stop, "emulator heartbeat")
        for _task, event in list(self.running.values()):
            event.set()
        tasks = [t for t, _ in self.running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=max(self.host.grace_left() - 1.0, 0.5))
