"""Running an experiment inside the MaaS process (POST /v1/selflearn/experiments).

Paired design: the Tuner prepares a baseline and a variant parameter version; each arm in turn
becomes the experiment's live arm (every new run gets its parameters, through the ParamSource)
while the User Emulator plays the same seed, so both arms see the same scenarios × personas.
The arm order follows the seed (even: baseline first) so a warm-up effect does not always favour
the same arm. Then the Teacher waits for the sensor, judges the probe answers, analyses and
stores the verdict. The live arm is cleared when the experiment ends, however it ends, and the
active version serves again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from maas.db.pool import close_quietly, connect
from maas.errors import BadRequest, Conflict
from maas.host import ExtensionHost
from maas.params import ParamSource
from selflearn import tuner
from selflearn.emulator.engine import Config
from selflearn.emulator.plan import plan
from selflearn.emulator.runs import EmulatorRuns
from selflearn.emulator.seeds import load_personas, load_scenarios
from selflearn.queries import q
from selflearn.settings import SelflearnSettings
from selflearn.teacher import judge as judging
from selflearn.teacher import replaying
from selflearn.teacher.analysis import Inputs, Verdict, analyse
from selflearn.teacher.metrics import (
    SENSOR_METRICS,
    ArmData,
    Judged,
    Probe,
    Retrieved,
    RunCost,
    Unit,
    by_type,
)
from selflearn.teacher.spec import ExperimentSpec, SpecError, parse

log = logging.getLogger(__name__)


class ExperimentFailed(Exception):
    """An arm could not be played or measured; recorded on the experiment."""


def check_split(spec: ExperimentSpec) -> None:
    """A split experiment runs on live traffic: no planted facts, no judge; sensor metrics only."""
    asked = [spec.primary_metric, *(g.metric for g in spec.guardrails)]
    bad = [m for m in asked if m not in SENSOR_METRICS]
    if bad:
        raise SpecError(
            f"{spec.name}: a split experiment measures live traffic with sensor "
            f"metrics only ({', '.join(SENSOR_METRICS)}), not {', '.join(bad)}"
        )


def arm_order(seed: int) -> tuple[str, str]:
    return ("baseline", "variant") if seed % 2 == 0 else ("variant", "baseline")


async def arm_data(conn: Any, emulator_run: uuid.UUID, judged: dict[str, Judged]) -> ArmData:
    """One arm's probes, retrievals and run costs, from sensor tables + emulator expectations."""
    retrieved: dict[str, list[Retrieved]] = {}
    for r in await conn.fetch(q("teacher_probe_retrievals"), emulator_run):
        items = [Retrieved(u, frozenset(s)) for u, s in zip(r["used"], r["sources"], strict=True)]
        retrieved.setdefault(str(r["run_id"]), []).extend(items)
    probes = [
        Probe(
            str(p["run_id"]),
            str(p["user_id"]),
            p["scenario"],
            p["persona"],
            p["ability"],
            tuple(p["fact_ids"]),
            dict(p["planted"]),
            p["answer_hit"],
            tuple(retrieved.get(str(p["run_id"]), [])),
        )  # fmt: skip
        for p in await conn.fetch(q("teacher_probes"), emulator_run)
    ]
    runs = [
        RunCost(str(r["user_id"]), str(r["thread_id"]), r["latency_ms"], r["tokens"])
        for r in await conn.fetch(q("teacher_episode_runs"), emulator_run)
    ]
    return ArmData(probes, runs, judged)


def planned_units(seed: int, dialogs: int) -> dict[Unit, int]:
    """What both arms must deliver: each planned episode (scenario, persona) with its number of
    first-attempt probes. A unit short in either arm makes the verdict INVALID (attrition)."""
    episodes = plan(seed, dialogs, load_scenarios(), load_personas())
    return {(e.scenario.id, e.persona.id): len(e.scenario.questions) for e in episodes}


@dataclass
class Experiments:
    host: ExtensionHost
    emulator: EmulatorRuns
    settings: SelflearnSettings
    params: ParamSource | None = None  # the TunerParams, invalidated after each switch
    running: dict[uuid.UUID, tuple[asyncio.Task[None], asyncio.Event]] = field(default_factory=dict)

    def pool(self) -> Any:
        return self.host.pool

    def judge(self, spec: ExperimentSpec) -> judging.Judge:
        cfg = self.host.settings
        kind = spec.judge if spec.judge != "auto" else ("heuristic" if cfg.offline else "llm")
        if kind == "heuristic":
            return judging.HeuristicJudge()
        if cfg.offline:
            raise BadRequest("judge kind 'llm' needs an LLM; this MaaS runs in offline mode")
        key = cfg.llm_api_key.get_secret_value() if cfg.llm_api_key else "not-needed"
        complete = judging.openai_complete(cfg.llm_base_url, key, cfg.llm_model, cfg.llm_timeout_s)
        return judging.LLMJudge(complete, cfg.llm_model)

    async def start(
        self,
        spec: ExperimentSpec,
        who: str,
        mode: str = "paired",
        reuse_baseline: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        """Paired: both arms through the emulator in the background. Split: live traffic is
        split by thread from now on, until the experiment is stopped (end_split). A replay may
        take its baseline's answers from an earlier replay (`reuse_baseline`, its emulator run:
        the same questions over the same stored memories with the same parameters, as a deep
        search's trials do) and ask only the variant."""
        if self.params is None:
            why = "MAAS_SELFLEARN_TUNER=false, or the app was given its own source"
            raise Conflict(f"experiments need the Tuner's parameter source ({why})")
        if mode == "split":
            check_split(spec)
        judge = self.judge(spec) if mode == "paired" else None  # refuse before storing anything
        exp_id = uuid.uuid4()
        holder = await self._hold(exp_id) if judge is not None else None
        try:
            row = await self._create(spec, who, mode, exp_id)
        except BaseException:
            await close_quietly(holder)
            raise
        if judge is None:
            self._invalidate()  # the split starts with the next run
            return row
        stop = asyncio.Event()
        run = self._run(exp_id, spec, judge, stop, holder, reuse_baseline)
        task = asyncio.create_task(run, name="experiment")
        self.running[exp_id] = (task, stop)
        return row

    async def _hold(self, exp_id: uuid.UUID) -> Any:
        """A paired experiment lives while this connection holds its lock: if the process dies,
        the lock goes with it and the live arm stops steering (tuner_source_state)."""
        holder = await connect(self.host.dsn, application_name="selflearn-experiment")
        await holder.fetchval(q("teacher_hold_experiment"), str(exp_id))
        return holder

    async def _create(
        self, spec: ExperimentSpec, who: str, mode: str, exp_id: uuid.UUID
    ) -> dict[str, Any]:
        async with self.pool().acquire() as conn, conn.transaction():
            for gone in await conn.fetch(q("teacher_fail_abandoned")):
                log.warning("experiment %s was abandoned by its process: marked failed", gone["id"])
            try:
                row = await conn.fetchrow(
                    q("teacher_create_experiment"), spec.name, spec.raw, spec.hash, mode, exp_id
                )
            except asyncpg.UniqueViolationError as exc:
                raise Conflict("another experiment is running; stop it or wait") from exc
            base = await self._base(conn)
            await tuner.prepare_experiment(conn, spec, exp_id, base, who)
        return dict(row)

    async def _base(self, conn: Any) -> dict[str, Any]:
        """The parameters in force: the active version, else MaaS's own (built-in/MAAS_PARAMS)."""
        current = await tuner.active(conn)
        if current is not None:
            return dict(current["params"])
        return dict((await self.host.active_params()).values)

    async def end_split(self, exp_id: uuid.UUID) -> Verdict:
        """Stop splitting traffic and analyse it: unpaired (Welch / Mann-Whitney) per thread,
        from the sensor rows of each arm's version since the experiment started."""
        row = await self.pool().fetchrow(q("teacher_get_experiment"), exp_id)
        spec = parse(row["spec"], row["name"])
        labels = {arm: f"tuner-{v}" for arm, v in row["versions"].items()}
        await self._finish(exp_id, "done", None)  # first: new runs get the active version again
        await asyncio.sleep(self.settings.params_poll_s)  # … in every process
        await self._wait_for_sensor_split()
        runs = await self.pool().fetch(
            q("teacher_split_runs"), labels["baseline"], labels["variant"], row["started_at"]
        )
        arms = {arm: ArmData(by_thread=True) for arm in labels}
        by_label = {label: arm for arm, label in labels.items()}
        for r in runs:
            cost = RunCost(str(r["user_id"]), str(r["thread_id"]), r["latency_ms"], r["tokens"],
                           r["found_anything"])  # fmt: skip
            arms[by_label[r["param_version"]]].runs.append(cost)
        verdict = analyse(Inputs(spec, arms["baseline"], arms["variant"], paired=False))
        await store_verdict(self.pool(), exp_id, spec, verdict, None)
        return verdict

    async def _wait_for_sensor_split(self) -> None:
        deadline = time.monotonic() + self.settings.experiment_sensor_timeout_s
        while time.monotonic() < deadline:
            lag = await self.pool().fetchval(q("sensor_stats_lag"))
            if not lag:
                return
            await asyncio.sleep(0.2)

    def stop(self, experiment_id: uuid.UUID) -> bool:
        entry = self.running.get(experiment_id)
        if entry is not None:
            entry[1].set()
        return entry is not None

    async def _run(
        self,
        exp_id: uuid.UUID,
        spec: ExperimentSpec,
        judge: judging.Judge,
        stop: asyncio.Event,
        holder: Any = None,
        reuse_baseline: uuid.UUID | None = None,
    ) -> None:
        status, error = "failed", None
        try:
            if spec.replay is not None:
                played = await self._replay(exp_id, spec, stop, reuse_baseline)
                status = "stopped" if stop.is_set() else "done"
                if status == "done":
                    await self._conclude_replay(exp_id, spec, played)
                return
            await self._warm_up(spec, stop)
            emulator_runs = {}
            for arm in arm_order(spec.seed):
                if not stop.is_set():
                    emulator_runs[arm] = await self._play(exp_id, arm, spec, stop)
            status = "stopped" if stop.is_set() else "done"
            if status == "done":
                await self._conclude(exp_id, spec, judge, emulator_runs)
        except Exception as exc:  # noqa: BLE001 (task boundary: recorded on the experiment)
            log.warning("experiment %s failed: %s: %s", exp_id, type(exc).__name__, exc)
            error = f"{type(exc).__name__}: {exc}"[:1000]
        finally:
            self.running.pop(exp_id, None)
            await self._finish(exp_id, status, error)
            await close_quietly(holder)

    async def _switch(self, exp_id: uuid.UUID, arm: str | None, spec: ExperimentSpec) -> None:
        async with self.pool().acquire() as conn, conn.transaction():
            await conn.fetchval(q("teacher_set_live_arm"), exp_id, arm)
            reason = f"experiment {spec.name}: {arm or 'no'} arm live"
            change = tuner.Change("teacher", "teacher", reason, exp_id)
            await tuner.audit(conn, "experiment_arm", change, None, None)
        self._invalidate()
        # Other MaaS processes see the switch within one poll interval: wait it out.
        await asyncio.sleep(self.settings.params_poll_s if arm else 0)

    def _invalidate(self) -> None:
        invalidate = getattr(self.params, "invalidate", None)
        if invalidate is not None:
            invalidate()

    async def _play(
        self, exp_id: uuid.UUID, arm: str, spec: ExperimentSpec, stop: asyncio.Event
    ) -> uuid.UUID:
        await self._switch(exp_id, arm, spec)
        row = await self.emulator.start(Config(spec.seed, spec.dialogs, spec.concurrency))
        run_id: uuid.UUID = row["id"]
        await self.pool().execute(q("teacher_set_emulator_run"), exp_id, arm, run_id)
        task = self.emulator.running[run_id][0]
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if stop.is_set():
            self.emulator.stop(run_id)
        await task
        await self._switch(exp_id, None, spec)
        ended = await self.pool().fetchrow(q("emulator_get_run"), run_id)
        if ended["status"] not in ("completed", "stopped"):
            raise ExperimentFailed(f"{arm} arm: emulator run {run_id} {ended['status']}: "
                                   f"{ended['error']}")  # fmt: skip
        return run_id

    async def _replay(
        self,
        exp_id: uuid.UUID,
        spec: ExperimentSpec,
        stop: asyncio.Event,
        reuse_baseline: uuid.UUID | None = None,
    ) -> replaying.Played:
        assert spec.replay is not None
        row = await self.pool().fetchrow(q("teacher_get_experiment"), exp_id)
        async with self.pool().acquire() as conn:
            versions = {arm: (v, (await tuner.version(conn, v))["params"])
                        for arm, v in row["versions"].items()}  # fmt: skip
        arms = replaying.ReplayArms(self.emulator, self.pool, self._invalidate, exp_id,
                                    spec.replay, spec.seed, versions, stop,
                                    reuse_baseline)  # fmt: skip
        return await arms.play()

    async def _conclude_replay(
        self, exp_id: uuid.UUID, spec: ExperimentSpec, played: replaying.Played
    ) -> Verdict:
        """Both arms' questions, as the sensor recorded their runs; a run that used another
        version than its arm's is left out and makes the verdict INVALID."""
        assert spec.replay is not None
        await self._wait_replay_sensor(played.emulator_run)
        row = await self.pool().fetchrow(q("teacher_get_experiment"), exp_id)
        data, wrong = {}, {}
        async with self.pool().acquire() as conn:
            for arm, version in row["versions"].items():
                run, label = played.emulator_run, _label(version)
                if arm == "baseline" and played.baseline_from is not None:
                    run, label = played.baseline_from, None  # checked in its own experiment
                data[arm], wrong[arm] = await replaying.arm_data(
                    conn, run, arm, label, spec.replay.abstain_floor, spec.replay.budget
                )
        problems = [f"{n} {arm} question(s) ran with another parameter version"
                    for arm, n in wrong.items() if n]  # fmt: skip
        verdict = analyse(Inputs(spec, data["baseline"], data["variant"], True, problems=problems))
        verdict.checks |= {
            "replay": {"source": played.source, "reingested": played.reingested,
                       "histories_reused": played.reused, "answers": played.answers,
                       "emulator_run": str(played.emulator_run),
                       "baseline_from": played.baseline_from and str(played.baseline_from),
                       "other_version": wrong,
                       "by_type": {arm: by_type(d) for arm, d in data.items()}},
        }  # fmt: skip
        await store_verdict(self.pool(), exp_id, spec, verdict, None)
        return verdict

    async def _wait_replay_sensor(self, emulator_run: uuid.UUID) -> None:
        deadline = time.monotonic() + self.settings.experiment_sensor_timeout_s
        while left := await self.pool().fetchval(q("teacher_replay_unrecorded"), emulator_run):
            if time.monotonic() > deadline:
                raise ExperimentFailed(f"the sensor did not record {left} run(s) in time")
            await asyncio.sleep(0.2)

    async def _warm_up(self, spec: ExperimentSpec, stop: asyncio.Event) -> None:
        """A few dialogs before the first arm, not analysed, so one-time costs (loading the
        embedding model, cold caches) do not land on whichever arm goes first."""
        if spec.warmup_dialogs and not stop.is_set():
            config = Config(spec.seed + 1, spec.warmup_dialogs, spec.concurrency)
            row = await self.emulator.start(config)
            await self.emulator.running[row["id"]][0]

    async def _wait_for_sensor(self, emulator_runs: dict[str, uuid.UUID]) -> None:
        deadline = time.monotonic() + self.settings.experiment_sensor_timeout_s
        while True:
            left = [await self.pool().fetchval(q("teacher_unrecorded"), r)
                    for r in emulator_runs.values()]  # fmt: skip
            if not any(left):
                return
            if time.monotonic() > deadline:
                raise ExperimentFailed(f"the sensor did not record {sum(left)} run(s) in time")
            await asyncio.sleep(0.2)

    async def _judge(
        self, exp_id: uuid.UUID, judge: judging.Judge, emulator_run: uuid.UUID, repeats: int
    ) -> tuple[dict[str, Judged], list[judging.Score]]:
        rows = await self.pool().fetch(q("teacher_judge_inputs"), emulator_run)
        inputs = [judging.JudgeInput(
            str(r["run_id"]), str(r["user_id"]), r["query"], r["answer"], r["context_text"],
            tuple((m["memory_id"], m["text"]) for m in r["used_memories"]),
        ) for r in rows]  # fmt: skip
        scores = await judging.judge_all(judge, inputs, repeats)
        users = {i.run_id: i.user_id for i in inputs}
        await self.pool().executemany(q("teacher_insert_judgement"), [
            (uuid.UUID(s.run_id), uuid.UUID(users[s.run_id]), exp_id, judge.version, s.aspect,
             s.memory_id, s.score, s.swapped, s.repeat) for s in scores
        ])  # fmt: skip
        judged = {run: Judged(h, u) for run, (h, u) in judging.per_run(scores).items()}
        return judged, scores

    async def _conclude(
        self,
        exp_id: uuid.UUID,
        spec: ExperimentSpec,
        judge: judging.Judge,
        emulator_runs: dict[str, uuid.UUID],
    ) -> Verdict:
        await self._wait_for_sensor(emulator_runs)
        data, all_scores = {}, []
        for arm, run in emulator_runs.items():
            judged, scores = await self._judge(exp_id, judge, run, spec.judge_repeats)
            all_scores += scores
            async with self.pool().acquire() as conn:
                data[arm] = await arm_data(conn, run, judged)
        agreement = judging.agreement(all_scores)
        planned = planned_units(spec.seed, spec.dialogs)
        verdict = analyse(Inputs(spec, data["baseline"], data["variant"], True, agreement, planned))
        await store_verdict(self.pool(), exp_id, spec, verdict, judge.version)
        return verdict

    async def _finish(self, exp_id: uuid.UUID, status: str, error: str | None) -> None:
        try:
            await self.pool().execute(q("teacher_finish_experiment"), exp_id, status, error)
        except Exception as exc:  # noqa: BLE001 (shutting down: the pool may be closed already)
            log.warning("experiment %s: could not record its end: %s", exp_id, exc)
        self._invalidate()

    async def stop_all_at_shutdown(self, stop: asyncio.Event) -> None:
        """Supervised job: at shutdown, stop every experiment (its live arm is cleared)."""
        await stop.wait()
        for _task, event in list(self.running.values()):
            event.set()
        tasks = [t for t, _ in self.running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=max(self.host.grace_left() - 1.0, 0.5))


def _label(version: int) -> str | None:
    return f"tuner-{version}"


async def store_verdict(
    pool: Any, exp_id: uuid.UUID, spec: ExperimentSpec, verdict: Verdict, judge_version: str | None
) -> Any:
    out = verdict.as_json()
    return await pool.fetchrow(
        q("teacher_insert_verdict"), exp_id, spec.hash, verdict.verdict, verdict.reasons,
        verdict.recommendations, out["metrics"], out["checks"], judge_version,
    )  # fmt: skip
