"""The Manager: learning cycles toward goals, each a recorded row in selflearn.cycles.

- micro: an emulator batch on the parameters in force, the sensor, the Teacher's metrics with
  CIs, the goal's constraints checked (a health check);
- macro: one experiment (baseline = parameters in force, variant = one change toward the goal),
  the Teacher's verdict, then: SHIP and not critical → activated through the Tuner; SHIP and
  critical → a proposal waiting for a person; otherwise nothing changes;
- deep: an Optuna search (selflearn/manager/deep.py) whose best variant is confirmed by a macro
  experiment on scenarios the search did not see, then proposed.

One cycle runs at a time (a unique index: experiments steer every new run's parameters). The
process running a cycle holds a lease it renews with each heartbeat; a cycle whose lease ran
out belongs to a dead process and is resumed (a macro whose verdict was stored) or marked
aborted by the recovery loop — never left running. A person can stop a cycle from any process.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from maas.errors import BadRequest, Conflict, NotFound
from maas.host import ExtensionHost
from maas.runtime.loops import wait_any
from selflearn import tuner
from selflearn.emulator.engine import Config
from selflearn.emulator.plan import THREADS_PER_EPISODE
from selflearn.emulator.runs import EmulatorRuns
from selflearn.manager import goals, health, policy, reports, teaching
from selflearn.manager.cycle import Cycle, CycleFailed, CycleStopped, decide_once, fresh_seed
from selflearn.manager.schedule import Schedule
from selflearn.manager.settings import ManagerSettings
from selflearn.queries import q
from selflearn.teacher import spending
from selflearn.teacher.experiment import Experiments

log = logging.getLogger(__name__)
KINDS = ("micro", "macro", "deep")
DECISIVE = ("macro", "confirm")  # experiments whose verdict can change the parameters: tests


@dataclass
class Manager:
    host: ExtensionHost
    emulator: EmulatorRuns
    experiments: Experiments
    settings: ManagerSettings
    invalidate: Callable[[], None] = lambda: None  # the parameter source re-reads after a change
    token: uuid.UUID = field(default_factory=uuid.uuid4)  # this process's lease token
    running: dict[uuid.UUID, tuple[asyncio.Task[None], Cycle]] = field(default_factory=dict)
    sensor_timeout_s: float = 60.0
    schedule: Schedule | None = None  # unattended learning, once the loop runs

    def pool(self) -> Any:
        return self.host.pool

    def scheduled(self) -> Schedule:
        """Unattended learning (made on first use: tests replace the settings before that)."""
        if self.schedule is None:
            self.schedule = Schedule(self)
        return self.schedule

    def health(self) -> dict[str, Any]:
        """/health's selflearn section: unattended learning's state and budget, and the cycles
        this process runs."""
        schedule = self.scheduled().view()
        running = [{"id": str(c.id), "kind": c.kind, "phase": c.phase,
                    "progress": round(c.progress, 3), "requested_by": c.requested_by}
                   for _t, c in self.running.values()]  # fmt: skip
        return {"schedule": schedule, "cycles_running": running}

    # ---- starting, stopping -------------------------------------------------------------

    async def start(
        self, kind: str, goal_id: int | None, config: dict[str, Any], who: str
    ) -> dict[str, Any]:
        goal = await self._goal_for(kind, goal_id)
        if await self.pool().fetchrow(q("mgr_experiment_running")) is not None:
            raise Conflict("an experiment is running; wait for it or stop it first")
        try:
            cycle_id = await self.pool().fetchval(
                q("mgr_cycle_insert"), kind, goal_id, config, who, self.token, self.settings.lease_s
            )
        except asyncpg.UniqueViolationError as exc:
            raise Conflict("another cycle is running; stop it or wait") from exc
        cycle = Cycle(cycle_id, kind, goal, config, {}, self.token, requested_by=who)
        self._launch(cycle, RUNNERS[kind])
        return await self.get(cycle_id)

    async def _goal_for(self, kind: str, goal_id: int | None) -> dict[str, Any] | None:
        if kind not in KINDS:
            raise BadRequest(f"kind must be one of {', '.join(KINDS)}")
        if goal_id is None:
            if kind != "micro":
                raise BadRequest(f"a {kind} cycle needs a goal")
            return None
        async with self.pool().acquire() as conn:
            goal = await goals.get(conn, goal_id)
        if goal["status"] in ("archived", "paused"):
            raise Conflict(f"goal {goal_id} is {goal['status']}")
        return goal

    def _launch(self, cycle: Cycle, runner: Runner) -> None:
        task = asyncio.create_task(self._run(cycle, runner), name=f"cycle-{cycle.id}")
        self.running[cycle.id] = (task, cycle)

    async def stop(self, cycle_id: uuid.UUID) -> dict[str, Any]:
        """Ask a cycle to stop, wherever it runs (its heartbeat reads the flag)."""
        view = await self.get(cycle_id)
        if view["status"] != "running":
            raise Conflict(f"cycle {cycle_id} is {view['status']}, not running")
        await self.pool().fetchval(q("mgr_cycle_request_stop"), cycle_id)
        entry = self.running.get(cycle_id)
        if entry is not None:
            entry[1].stop.set()
        return await self.get(cycle_id)

    async def get(self, cycle_id: uuid.UUID) -> dict[str, Any]:
        row = await self.pool().fetchrow(q("mgr_cycle_get"), cycle_id)
        if row is None:
            raise NotFound(f"cycle {cycle_id} not found")
        view = dict(row)
        view["live"] = cycle_id in self.running
        return view

    # ---- one cycle's life -----------------------------------------------------------------

    async def _run(self, cycle: Cycle, runner: Runner) -> None:
        beat = asyncio.create_task(self._heartbeat(cycle), name=f"cycle-beat-{cycle.id}")
        status, outcome, result, error = "failed", None, dict[str, Any](), None
        try:
            outcome, result = await runner(self, cycle)
            status = "done"
        except CycleStopped as exc:
            status, outcome, error = (
                ("aborted" if cycle.shutdown else "stopped"),
                "stopped",
                str(exc),
            )
        except Exception as exc:  # noqa: BLE001 (task boundary: recorded on the cycle)
            log.warning("cycle %s failed: %s: %s", cycle.id, type(exc).__name__, exc)
            error = f"{type(exc).__name__}: {exc}"[:1000]
        finally:
            beat.cancel()
            await self._finish(cycle, status, outcome, result, error)
            self.running.pop(cycle.id, None)

    async def _heartbeat(self, cycle: Cycle) -> None:
        """Renew the lease with the current phase and progress; see a stop asked elsewhere."""
        while True:
            try:
                asked = await self.pool().fetchrow(
                    q("mgr_cycle_progress"), cycle.id, cycle.token, cycle.phase,
                    round(cycle.progress, 4), cycle.state, self.settings.lease_s,
                )  # fmt: skip
                if asked is None or asked["stop_requested"]:
                    cycle.stop.set()
            except Exception as exc:  # noqa: BLE001 (a missed beat is retried; the lease has slack)
                log.warning("cycle %s heartbeat: %s", cycle.id, exc)
            await asyncio.sleep(self.settings.heartbeat_s)

    async def save_state(self, cycle: Cycle) -> None:
        """Write progress and the resumable state now (not at the next beat)."""
        await self.pool().fetchrow(
            q("mgr_cycle_progress"), cycle.id, cycle.token, cycle.phase,
            round(cycle.progress, 4), cycle.state, self.settings.lease_s,
        )  # fmt: skip

    async def _finish(
        self,
        cycle: Cycle,
        status: str,
        outcome: str | None,
        result: dict[str, Any],
        error: str | None,
    ) -> None:
        try:
            facts = await reports.facts(self.pool(), cycle.id, status, outcome, result, error)
            result = {**result, "report": facts}
            md = reports.markdown(facts)
            done = await self.pool().fetchval(
                q("mgr_cycle_finish"), cycle.id, cycle.token, status, outcome, result, md, error
            )
            if done is None:
                log.warning("cycle %s was no longer ours when it ended (%s)", cycle.id, status)
        except Exception as exc:  # noqa: BLE001
            # shutting down: the pool may be closed; recovery ends it
            log.warning("cycle %s: could not record its end: %s", cycle.id, exc)

    # ---- steps shared by the cycle kinds --------------------------------------------------

    async def experiment(
        self,
        cycle: Cycle,
        variant: dict[str, Any],
        size: teaching.Size,
        role: str,
        span: Any,
        replay: dict[str, Any] | None = None,
        reuse_baseline: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """Run one experiment for the cycle's goal, linked to the cycle as soon as it starts."""
        assert cycle.goal is not None
        n = len(cycle.state.setdefault("experiments", []))
        name = f"g{cycle.goal['id']}-{cycle.kind}-{cycle.id.hex[:6]}-{role}{n}"
        alpha = await self.test_alpha(cycle) if role in DECISIVE else None
        spec = teaching.spec_for(cycle.goal, name, variant, size, self.settings, alpha, replay)

        async def linked(exp_id: uuid.UUID) -> None:
            trial = cycle.state.get("trial") if role == "trial" else None
            await self.pool().execute(q("mgr_cycle_link_experiment"), cycle.id, exp_id, role, trial)
            cycle.state["experiments"].append(str(exp_id))
            await self.save_state(cycle)

        exp_id, status = await teaching.run_experiment(
            self.experiments, spec, f"manager cycle {cycle.id}", span, started=linked,
            reuse_baseline=reuse_baseline,
        )  # fmt: skip
        cycle.check()
        if status != "done":
            raise CycleFailed(f"experiment {name} ended {status}")
        return exp_id

    async def goal_record(self, goal_id: int) -> dict[str, Any]:
        """Every test of the goal so far and its α budget (teacher/spending.py)."""
        rows = await self.pool().fetch(q("mgr_goal_tests"), goal_id)
        return spending.record(self.settings.alpha, rows)

    async def test_alpha(self, cycle: Cycle) -> float:
        """α of the goal's next test; a goal whose budget is used up takes no more tests."""
        assert cycle.goal is not None
        record = await self.goal_record(cycle.goal["id"])
        alpha = float(record["next_alpha"])
        if alpha <= 0:
            spent, n = record["spent"], len(record["tests"])
            raise CycleFailed(
                f"goal {cycle.goal['id']} has spent its α ({spent:g} of {record['alpha']:g} "
                f"over {n} tests): archive it or start a new goal"
            )
        cycle.state["alpha"] = {
            "test": len(record["tests"]) + 1,
            "alpha": alpha,
            "spent_before": record["spent"],
            "goal_alpha": record["alpha"],
        }
        return alpha

    async def measure_goal(
        self, cycle: Cycle, metrics: dict[str, Any], source: str, version: str, in_force: bool
    ) -> None:
        """Record the goal's metric; `in_force` ones make its current value and progress."""
        goal = cycle.goal
        found = metrics.get(goal["metric"]) if goal else None
        value = None if found is None else found.get(source, found.get("value"))
        if goal is None or found is None or value is None:
            return
        ci = found.get("ci") if source != "baseline" else None
        await self.pool().execute(
            q("mgr_measure"), goal["id"], cycle.id, goal["metric"], float(value),
            ci[0] if ci else None, ci[1] if ci else None, version, source, in_force,
        )  # fmt: skip

    async def decide(
        self, cycle: Cycle, exp_id: uuid.UUID, always_propose: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Act on the Teacher's verdict of `exp_id`: activate, propose, or leave things be."""
        verdict = await teaching.verdict(self.pool(), exp_id)
        if verdict is None:
            raise CycleFailed(f"experiment {exp_id} ended without a verdict")
        arms = await teaching.arm_versions(self.pool(), exp_id)
        base, var = arms["baseline"], arms["variant"]
        await self.measure_goal(cycle, verdict["metrics"], "baseline", base["label"], True)
        result = evidence(exp_id, verdict, base["params"], var["params"])
        result["arms"] = {"baseline": base["version"], "variant": var["version"]}
        result["violated"] = goals.violated(cycle.goal, verdict["metrics"])
        if "alpha" in cycle.state:
            result["alpha"] = cycle.state["alpha"]
        # The winning arm's estimate is biased upward (it won because it measured high): it is
        # recorded, never taken as the goal's progress; a re-measurement is.
        await self.measure_goal(cycle, verdict["metrics"], "variant", var["label"], False)
        if verdict["verdict"] != "SHIP" or result["violated"]:
            return goals.hold_outcome(verdict["verdict"], result["violated"]), result
        critical = policy.critical_reasons(self.settings, base["params"], var["params"])
        if always_propose:
            critical = [always_propose, *critical]
        if critical:
            result["proposal"] = await self._propose(
                cycle, exp_id, var["version"], result, critical
            )
            return "proposed", result
        await self._activate(cycle, exp_id, var["version"], verdict)
        result["activated"] = var["version"]
        result["remeasured"] = await self.remeasure(cycle, var["label"])
        return "shipped", result

    async def remeasure(self, cycle: Cycle, label: str) -> dict[str, Any] | None:
        """The goal's metric on the version now in force, from a batch of new synthetic users
        (a seed of this cycle's own): the goal's progress from an unbiased measurement."""
        dialogs = self.settings.remeasure_dialogs
        if not dialogs or cycle.goal is None:
            return None
        if teaching.replays(cycle.goal, cycle.config):  # dialogs would measure the toy world
            return {"value": None, "note": "a goal that learns from replays is re-measured by "
                    "the next cycle's baseline arm, on a world of a fresh seed"}  # fmt: skip
        seed = fresh_seed(cycle.id, "remeasure")
        config = Config(seed, dialogs, self.settings.concurrency, label="remeasure")
        run_id = await self.emulate(cycle, config, cycle.span(0.96, 0.99, "re-measuring"))
        await health.wait_for_sensor(self.pool(), run_id, self.sensor_timeout_s)
        metrics = await health.measure(self.experiments, run_id, self.settings.alpha, 0, label)
        await self.measure_goal(cycle, metrics, "micro", label, True)  # a batch in force
        found = metrics.get(cycle.goal["metric"])
        return {"emulator_run": str(run_id), "seed": seed, "dialogs": dialogs, "value": found}

    async def _propose(
        self,
        cycle: Cycle,
        exp_id: uuid.UUID,
        version: int,
        result: dict[str, Any],
        critical: list[str],
    ) -> int:
        goal_id = cycle.goal["id"] if cycle.goal else None
        async with self.pool().acquire() as conn, conn.transaction():
            pid: int = await conn.fetchval(
                q("mgr_proposal_insert"), cycle.id, goal_id, exp_id, version, result["diff"],
                critical, _evidence_of(result),
            )  # fmt: skip
            await conn.execute(q("mgr_proposal_supersede"), goal_id, pid)
        return pid

    async def _activate(
        self, cycle: Cycle, exp_id: uuid.UUID, version: int, verdict: dict[str, Any]
    ) -> None:
        why = f"cycle {cycle.id} ({cycle.kind}): the Teacher's verdict is SHIP — " + "; ".join(
            verdict["reasons"]
        )
        change = tuner.Change("manager", "manager", why[:2000], exp_id)
        await teaching.activate(self.pool(), version, change)
        self.invalidate()

    async def emulate(self, cycle: Cycle, config: Config, span: Any) -> uuid.UUID:
        """An emulator batch on the parameters in force, followed with progress and stop."""
        row = await self.emulator.start(config)
        run_id: uuid.UUID = row["id"]
        cycle.state["emulator_run"] = str(run_id)
        task = self.emulator.running[run_id][0]
        planned = -(-config.dialogs // THREADS_PER_EPISODE) * THREADS_PER_EPISODE
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)
            done = (await self.pool().fetchrow(q("mgr_emulator_progress"), run_id))["dialogs"]
            if await span(done / planned):
                self.emulator.stop(run_id)
        cycle.check()
        ended = await self.pool().fetchrow(q("mgr_emulator_progress"), run_id)
        if ended["status"] != "completed":
            raise CycleFailed(f"emulator run {run_id} ended {ended['status']}")
        return run_id

    # ---- restarts -------------------------------------------------------------------------

    async def recover(self) -> list[tuple[uuid.UUID, str]]:
        """Cycles whose process died: a macro whose verdict was stored is resumed (the decision
        and the report are made here); every other one is marked aborted."""
        await self._end_stale_experiments()
        handled = []
        for row in await self.pool().fetch(q("mgr_cycle_orphans")):
            adopted = await self.pool().fetchval(
                q("mgr_cycle_adopt"), row["id"], row["lease_token"], self.token,
                self.settings.lease_s,
            )  # fmt: skip
            if adopted is not None:
                handled.append((row["id"], await self._recover_one(row)))
        return handled

    async def _recover_one(self, row: Any) -> str:
        state = dict(row["state"] or {})
        cycle = Cycle(row["id"], row["kind"], None, dict(row["config"]), state, self.token)
        if row["goal_id"] is not None:
            async with self.pool().acquire() as conn:
                cycle.goal = await goals.get(conn, row["goal_id"])
        exp = state.get("experiments", [None])[-1] if row["kind"] == "macro" else None
        if exp and not state.get("decided") and await self._concluded(uuid.UUID(exp)):
            self._launch(cycle, resume_macro)
            return "resumed"
        await self._abort_orphan(cycle, row["phase"])
        return "aborted"

    async def _concluded(self, exp_id: uuid.UUID) -> bool:
        row = await self.pool().fetchrow(q("mgr_experiment_runs"), exp_id)
        has_verdict = await teaching.verdict(self.pool(), exp_id) is not None
        return row is not None and row["status"] == "done" and has_verdict

    async def _end_experiments(self, rows: list[Any]) -> None:
        """Experiments a dead process was running for a cycle are ended too: one left
        'running' would steer parameters and block every later experiment."""
        for exp in rows:
            if exp["id"] not in self.experiments.running:
                await self.pool().execute(
                    q("teacher_finish_experiment"), exp["id"], "failed",
                    "interrupted: the process running it stopped (its cycle was aborted)",
                )  # fmt: skip
        if rows:
            self.invalidate()

    async def _end_stale_experiments(self) -> None:
        await self._end_experiments(await self.pool().fetch(q("mgr_stale_experiments")))

    async def _abort_orphan(self, cycle: Cycle, phase: str) -> None:
        await self._end_experiments(await self.pool().fetch(q("mgr_orphan_experiments"), cycle.id))
        error = f"interrupted during '{phase}': the process running it stopped; not resumable"
        await self._finish(cycle, "aborted", "interrupted", {}, error)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Supervised: recover orphaned cycles at start and every recover_s; unattended
        learning's scheduled cycles (schedule.py); at shutdown stop the cycles of this process
        (→ aborted)."""
        schedule = self.scheduled()
        while not stop.is_set():
            try:
                await self.recover()
                await schedule.tick()
            except Exception as exc:  # noqa: BLE001
                # keep recovering; a database blip must not end this
                log.warning("cycle recovery: %s", exc)
            await wait_any(self.settings.recover_s, stop)
        await self._shutdown()

    async def _shutdown(self) -> None:
        """Record each cycle of this process as aborted first (the pool closes after a short
        grace, maybe before an experiment has wound down), then stop them."""
        for _task, cycle in list(self.running.values()):
            cycle.shutdown = True
            cycle.stop.set()
            error = f"shut down during '{cycle.phase}'"
            await self._finish(cycle, "aborted", "stopped", {}, error)
        tasks = [t for t, _ in self.running.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=max(self.host.grace_left() - 0.5, 0.5))


# ---- verdict → outcome ------------------------------------------------------------------------


def evidence(
    exp_id: uuid.UUID, verdict: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
) -> dict[str, Any]:
    return {
        "experiment_id": str(exp_id),
        "verdict": verdict["verdict"],
        "reasons": list(verdict["reasons"]),
        "recommendations": list(verdict["recommendations"]),
        "metrics": verdict["metrics"],
        "checks": verdict["checks"],
        "diff": tuner.diff(before, after),
    }


def _evidence_of(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("experiment_id", "verdict", "reasons", "recommendations", "metrics", "checks")
    return {k: result[k] for k in keys}


# ---- the cycle kinds ----------------------------------------------------------------------------

Runner = Callable[[Manager, Cycle], Awaitable[tuple[str, dict[str, Any]]]]


async def micro(m: Manager, cycle: Cycle) -> tuple[str, dict[str, Any]]:
    cfg = m.settings
    label, _ = await teaching.params_in_force(m.host)
    seed = int(cycle.config.get("seed", 1))
    dialogs = int(cycle.config.get("dialogs", cfg.micro_dialogs))
    batch = Config(seed, dialogs, cfg.concurrency, label="micro")
    run_id = await m.emulate(cycle, batch, cycle.span(0.0, 0.8, "emulating"))
    cycle.span(0.8, 0.85, "sensor")
    await health.wait_for_sensor(m.pool(), run_id, m.sensor_timeout_s)
    cycle.span(0.85, 0.95, "measuring")
    metrics = await health.measure(m.experiments, run_id, cfg.alpha, 0, label)
    coverage = dict(await m.pool().fetchrow(q("mgr_sensor_coverage"), run_id))
    summary = (await m.pool().fetchrow(q("emulator_get_run"), run_id))["summary"] or {}
    await m.measure_goal(cycle, metrics, "micro", label, True)
    broken = goals.violated(cycle.goal, metrics, "value")
    problems = broken + (
        [f"{summary.get('failures')} failed turns"] if summary.get("failures") else []
    )
    result = {"emulator_run": str(run_id), "param_version": label, "metrics": metrics,
              "sensor": coverage, "emulator": summary, "violated": broken,
              "problems": problems}  # fmt: skip
    return ("degraded" if problems else "healthy"), result


async def macro(m: Manager, cycle: Cycle) -> tuple[str, dict[str, Any]]:
    assert cycle.goal is not None
    cfg = m.settings
    _, base = await teaching.params_in_force(m.host)
    variant = cycle.config.get("variant") or await _next_variant(m, cycle.goal, base)
    if not variant:
        return "nothing left to try", {"note": "every lever step of this goal was tested"}
    seed = int(cycle.config.get("seed", 1))
    replay = None
    if teaching.replays(cycle.goal, cycle.config):  # a world of this seed (+ the corpus)
        from selflearn.manager.search import fresh_seed, plan

        seed = cycle.state.setdefault("seed", int(cycle.config.get("seed") or fresh_seed()))
        replay = plan(m, cycle, seed, "all")
        dialogs = int(cycle.config.get("dialogs", cfg.macro_dialogs))  # a replay asks questions
    else:
        dialogs = await _macro_dialogs(m, cycle, seed)
    size = teaching.Size(dialogs, seed, cfg.concurrency)
    span = cycle.span(0.0, 0.95, "experiment")
    exp_id = await m.experiment(cycle, variant, size, "macro", span, replay)
    return await decide_once(m, cycle, exp_id)


async def _macro_dialogs(m: Manager, cycle: Cycle, seed: int) -> int:
    """The dialogs asked for, else the power plan's (teaching.planned_dialogs), else the
    setting. The plan (power at that size) is kept in the cycle's state and report."""
    cfg = m.settings
    if "dialogs" in cycle.config or not cfg.plan_dialogs or cycle.goal is None:
        return int(cycle.config.get("dialogs", cfg.macro_dialogs))
    record = await m.goal_record(cycle.goal["id"])
    dialogs, plan = teaching.planned_dialogs(cycle.goal, cfg, record["next_alpha"], seed)
    cycle.state["plan"] = plan
    return dialogs


async def resume_macro(m: Manager, cycle: Cycle) -> tuple[str, dict[str, Any]]:
    """After a restart: the experiment ended with a verdict; only the decision was missing."""
    exp_id = uuid.UUID(cycle.state["experiments"][-1])
    outcome, result = await decide_once(m, cycle, exp_id)
    result["resumed"] = True
    return outcome, result


async def _next_variant(m: Manager, goal: dict[str, Any], base: dict[str, Any]) -> Any:
    """The next lever step not tested yet. A variant tested once that shipped and was then
    rolled back by the monitor counts as untested: it may come back through one new test (its
    α spent from the goal's record like any other), with no person needed."""
    rows = await m.pool().fetch(q("mgr_goal_tried"), goal["id"])
    return policy.next_variant(goal, base, tried(rows))


def tried(rows: list[Any]) -> list[dict[str, Any]]:
    """Variants that count as tested (mgr_goal_tried rows): all but one tested once whose
    shipped version the monitor rolled back."""
    return [dict(r["variant"] or {}) for r in rows if r["tests"] > 1 or not r["auto_rolled_back"]]


async def deep(m: Manager, cycle: Cycle) -> tuple[str, dict[str, Any]]:
    """A goal that learns from replays (teaching.replays) searches over replayed questions
    (search.py); the others over scripted dialogs (deep.py). Optuna (and SQLAlchemy) are
    imported only when a search runs."""
    assert cycle.goal is not None
    if teaching.replays(cycle.goal, cycle.config):
        from selflearn.manager.search import run as replayed

        return await replayed(m, cycle)
    from selflearn.manager.deep import run as dialogs

    return await dialogs(m, cycle)


RUNNERS: dict[str, Runner] = {"micro": micro, "macro": macro, "deep": deep}
