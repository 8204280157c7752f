"""Emulator runs inside the MaaS process: started by the admin API, recorded in
selflearn.emulator_runs, stopped on request or at shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from maas.errors import BadRequest, Conflict
from maas.host import ExtensionHost
from maas.runtime.loops import every
from selflearn.emulator import corpus
from selflearn.emulator.client import MaasClient, MaasUnavailable
from selflearn.emulator.engine import Config, Emulation, Expectation, Tally, summary
from selflearn.emulator.histories import Histories, history_key
from selflearn.emulator.paraphrase import LLMConfig, Paraphraser
from selflearn.emulator.replay import Answer, Pin, Replay, ReplayConfig, Stored
from selflearn.emulator.replay import summary as replay_summary
from selflearn.emulator.seeds import load_personas, load_scenarios
from selflearn.emulator.world import WorldSpec, generate
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

    async def answer(self, a: Answer) -> None:
        x = a.asked
        await self.pool.execute(
            q("emulator_record_answer"), self.run_id, uuid.UUID(x.user_id), uuid.UUID(x.run_id),
            a.arm, x.cluster, x.question_id, x.qtype, a.question.question, a.question.answer,
            sorted(x.evidence), a.budget, x.context_hit, x.top_score, a.context_tokens,
        )  # fmt: skip


@dataclass(frozen=True)
class ReplayRequest:
    """What to replay: a generated world, uploaded conversations (by hash), or both."""

    world: WorldSpec | None = None
    corpus: tuple[str, ...] = ()
    budget: int = 2000
    concurrency: int = 4
    abstain_floor: float = 1.0
    other_budget: int = 0  # each question asked at this budget too (0: not)

    def config(self, label: str) -> ReplayConfig:
        return ReplayConfig(
            self.budget, self.concurrency, label, self.abstain_floor, other_budget=self.other_budget
        )


@dataclass(frozen=True)
class Source:
    """The conversations of a replay, each with the hash of its content (what its stored history
    is kept by), and what describes them (stored with runs and experiments: the world's hash,
    generator and size; the corpus's conversation hashes)."""

    conversations: list[corpus.Conversation]
    about: dict[str, Any]
    hashes: list[str] = field(default_factory=list)

    @property
    def hash(self) -> str:
        return str(self.about["hash"])


def _counted(result: dict[str, Any], replay: Replay) -> dict[str, Any]:
    """The run's counters in the summary's keys (emulator_finish reads them): users as dialogs,
    imported turns, questions asked as runs, errors as failures."""
    return {**result, "dialogs": result.get("users", 0), "turns": replay.turns,
            "runs": len(replay.answers), "failures": sum(replay.errors.values())}  # fmt: skip


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
    histories: Histories = field(default_factory=Histories)

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

    # ---- replay: a world and/or uploaded conversations over stored histories ----------------

    async def source(self, req: ReplayRequest) -> Source:
        """The conversations to replay. An unknown conversation hash is the caller's error."""
        conversations: list[corpus.Conversation] = []
        about: dict[str, Any] = {}
        hashes: list[str] = []
        if req.world is not None:
            world = await asyncio.to_thread(generate, req.world)
            conversations += [corpus.parse(c) for c in world.conversations]
            hashes += [f"{world.hash}:{i}" for i in range(len(world.conversations))]
            about["world"] = world.describe()
        if req.corpus:
            rows = await self.pool().fetch(q("conversations_get"), list(req.corpus))
            found = {r["hash"]: r["conversation"] for r in rows}
            missing = [h for h in req.corpus if h not in found]
            if missing:
                raise BadRequest(f"unknown conversation(s): {', '.join(missing[:5])} (upload "
                                 "them first: POST /v1/selflearn/conversations)")  # fmt: skip
            conversations += [corpus.parse(found[h], h[:12]) for h in req.corpus]
            hashes += list(req.corpus)
            about["corpus"] = list(req.corpus)
        if not conversations:
            raise BadRequest("nothing to replay: give a world, a corpus, or both")
        parts = [about.get("world", {}).get("hash", ""), *sorted(req.corpus)]
        about["hash"] = hashlib.sha256("|".join(parts).encode()).hexdigest()
        return Source(conversations, about, hashes)

    def client(self, concurrency: int) -> MaasClient:
        return MaasClient(self._http(Config(concurrency=concurrency)), self.host.admin_key or "",
                          self._archive_s())  # fmt: skip

    async def stored(
        self,
        replay: Replay,
        source: Source,
        params: dict[str, Any],
        pin: Pin | None = None,
        only: list[int] | None = None,
    ) -> tuple[list[Stored], bool]:
        """The source's histories as stored under these archivist parameters, one synthetic user
        per conversation: each reused when this process already stored that conversation so (and
        its user still exists), else imported now. Returns them in the source's order and whether
        every one was reused."""
        keys = [history_key(h, params, self._embedder()) for h in source.hashes]
        found = {i: self.histories.get(k) for i, k in enumerate(keys)}
        alive = {
            i: s for i, s in found.items() if s is not None and await self._alive(replay.client, s)
        }
        missing = [i for i in range(len(keys)) if i not in alive]
        if missing:
            made = await replay.ingest(pin, [source.conversations[i] for i in missing])
            if replay.stop.is_set():
                return [], False
            for i, stored in zip(missing, made, strict=True):
                alive[i] = stored
                for gone in self.histories.put(keys[i], stored):
                    await self._erase(replay.client, gone)
        return [alive[i] for i in range(len(keys))], not missing

    def _embedder(self) -> str:
        return self.host.embedder

    async def _alive(self, client: MaasClient, stored: Stored) -> bool:
        """Stored users can be erased behind our back (a person, retention)."""
        try:
            await client.me(stored.user)
        except MaasUnavailable:
            return False
        return True

    async def _erase(self, client: MaasClient, gone: Stored) -> None:
        try:
            await client.erase_user(gone.user)
        except MaasUnavailable as exc:  # it stays; erasing it by hand is possible
            log.warning("could not erase synthetic user %s: %s", gone.user.user_id, exc)

    async def params_in_force(self) -> dict[str, Any]:
        return dict((await self.host.active_params()).values)

    async def start_replay(self, req: ReplayRequest) -> dict[str, Any]:
        """A replay run in the background: store (or reuse) the histories, ask every question
        once on the parameters in force, record the answers, summarise."""
        source = await self.source(req)
        seed = req.world.seed if req.world else 0
        row = await self.pool().fetchrow(
            q("emulator_create_replay"), seed, len(source.conversations), req.concurrency,
            self.url, source.about,
        )  # fmt: skip
        run_id: uuid.UUID = row["id"]
        replay = Replay(self.client(req.concurrency), PoolRecorder(self.pool(), run_id),
                        req.config(f"replay {run_id.hex[:8]}"), source.conversations)  # fmt: skip
        task = asyncio.create_task(self._replay(run_id, replay, source), name=f"replay-{run_id}")
        self.running[run_id] = (task, replay.stop)
        return dict(row)

    async def _replay(self, run_id: uuid.UUID, replay: Replay, source: Source) -> None:
        status, error, result = "failed", None, None
        try:
            stored, reused = await self.stored(replay, source, await self.params_in_force())
            result = await replay.run(stored, progress=self._progress(run_id, replay))
            result |= {"source": source.about, "histories_reused": reused}
            status = "stopped" if replay.stop.is_set() else "completed"
        except Exception as exc:  # noqa: BLE001 (task boundary: recorded on the row)
            log.warning("replay %s failed: %s: %s", run_id, type(exc).__name__, exc)
            error = f"{type(exc).__name__}: {exc}"[:1000]
            result = replay_summary(replay.answers, replay.config, 0.0, replay.turns,
                                    Counter(replay.errors), replay.stop.is_set())  # fmt: skip
        finally:
            await replay.client.http.aclose()
            self.running.pop(run_id, None)
        await self._finish(run_id, status, _counted(result, replay), error)

    def _progress(self, run_id: uuid.UUID, replay: Replay) -> Any:
        async def report(users_done: int) -> None:
            await self.pool().execute(q("emulator_progress"), run_id, users_done, replay.turns,
                                      len(replay.answers), sum(replay.errors.values()))  # fmt: skip

        return report

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
