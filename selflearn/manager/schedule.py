"""Unattended learning: cycles the Manager starts on its own, within a stated budget.

On by default (`MAAS_SELFLEARN_MANAGER_UNATTENDED=false` turns it off): a micro cycle (health of
the parameters in force) every `schedule_micro_s`, and, while a goal is active, a learning cycle
(`schedule_learn_kind`: deep or macro) every `schedule_learn_s` on the active goal measured
longest ago, fed the world and every uploaded conversation (`POST /v1/selflearn/conversations`,
`maas emulate --corpus`: an operator's own logs join unattended learning by being uploaded).
Each gets a fresh seed (new synthetic users, new questions). A period is counted
from the last scheduled start, the first one a period after the process starts (a restart does
not learn at once). Before starting, the budget is checked:

- CPU share: this process's CPU time spent while scheduled cycles ran, over the wall time since
  it started, stays under `max_cpu_share` (the CPU of the whole process is counted, live
  requests served meanwhile included: an upper bound);
- questions and turns the emulator sent in the last day stay under `max_runs_per_day`;
- live traffic: with more than `pause_live_runs_per_min` client runs finished in the last
  minute, learning waits.

The state (on/off, what it is doing or why it waits, when the next cycles are due, the budget
used) is in /health, GET /v1/selflearn/schedule and the dashboard; scheduled cycles are listed by
GET /v1/selflearn/cycles with `requested_by` "schedule".
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from maas.errors import Conflict, MaasError
from selflearn.manager.cycle import CycleHost
from selflearn.queries import q

log = logging.getLogger(__name__)
WHO = "schedule"


@dataclass
class Schedule:
    manager: CycleHost
    started: float = field(default_factory=time.monotonic)
    next_micro: float = 0.0
    next_learn: float = 0.0
    cpu_used_s: float = 0.0  # process CPU while scheduled cycles ran
    state: str = "waiting"
    last: dict[str, Any] = field(default_factory=dict)  # kind -> {cycle, seed, at}
    _cpu_mark: float | None = None

    def __post_init__(self) -> None:
        cfg = self.manager.settings
        self.next_micro = self.started + cfg.schedule_micro_s
        self.next_learn = self.started + cfg.schedule_learn_s

    @property
    def on(self) -> bool:
        return bool(self.manager.settings.unattended)

    def cpu_share(self, now: float | None = None) -> float:
        self._account()
        wall = max((now or time.monotonic()) - self.started, 1.0)
        return self.cpu_used_s / wall

    def _account(self) -> None:
        """Add the CPU spent since the last look while a scheduled cycle was running."""
        now_cpu = time.process_time()
        if self._cpu_mark is not None:
            self.cpu_used_s += now_cpu - self._cpu_mark
        scheduled = any(c.requested_by == WHO for _t, c in self.manager.running.values())
        self._cpu_mark = now_cpu if scheduled else None

    async def tick(self) -> str:
        """Called by the Manager's loop: start what is due, if the budget allows. Returns (and
        keeps) the state."""
        self._account()
        if not self.on:
            self.state = "off"
        elif self.manager.running:
            self.state = "cycle running"
        else:
            now = time.monotonic()
            times = (("micro", self.next_micro), ("learn", self.next_learn))
            due = sorted((at, k) for k, at in times if at <= now)
            self.state = await self._start(due[0][1], now) if due else "waiting"  # longest due
        return self.state

    async def _blocked(self) -> str | None:
        cfg = self.manager.settings
        if self.cpu_share() >= cfg.max_cpu_share:
            return f"paused: CPU share {self.cpu_share():.2f} ≥ {cfg.max_cpu_share}"
        usage = await self.manager.pool().fetchrow(q("mgr_schedule_usage"), 60.0)
        if usage["runs_today"] >= cfg.max_runs_per_day:
            return f"paused: {usage['runs_today']} emulator runs today ≥ {cfg.max_runs_per_day}"
        if usage["live_runs"] > cfg.pause_live_runs_per_min:
            return f"paused: live traffic {usage['live_runs']} runs/min"
        return None

    async def _start(self, due: str, now: float) -> str:
        blocked = await self._blocked()
        if blocked is not None:
            return blocked
        cfg = self.manager.settings
        if due == "micro":
            self.next_micro = now + cfg.schedule_micro_s
            return await self._launch("micro", None)
        self.next_learn = now + cfg.schedule_learn_s
        goal = await self.manager.pool().fetchval(q("mgr_schedule_goal"))
        if goal is None:
            return "waiting: no active goal"
        corpus = [r["hash"] for r in await self.manager.pool().fetch(q("mgr_schedule_corpus"))]
        return await self._launch(cfg.schedule_learn_kind, int(goal), corpus)

    async def _launch(self, kind: str, goal: int | None, corpus: list[str] | None = None) -> str:
        seed = secrets.randbelow(2**31 - 1)  # fresh synthetic users and questions each time
        config: dict[str, Any] = {"seed": seed} | ({"corpus": corpus} if corpus else {})
        try:
            view = await self.manager.start(kind, goal, config, WHO)
        except (Conflict, MaasError) as exc:
            log.info("unattended %s cycle not started: %s", kind, exc)
            return f"waiting: {exc}"
        self.last[kind] = {"cycle": str(view["id"]), "seed": seed, "goal": goal,
                           "conversations": len(corpus or [])}  # fmt: skip
        self._cpu_mark = time.process_time()
        return f"started a {kind} cycle"

    def view(self) -> dict[str, Any]:
        """What /health, GET /v1/selflearn/schedule and the dashboard show."""
        cfg, now = self.manager.settings, time.monotonic()
        return {
            "unattended": self.on,
            "state": "off" if not self.on else self.state,
            "micro_every_s": cfg.schedule_micro_s,
            "learn_every_s": cfg.schedule_learn_s,
            "learn_kind": cfg.schedule_learn_kind,
            "next_micro_in_s": round(max(self.next_micro - now, 0.0), 1),
            "next_learn_in_s": round(max(self.next_learn - now, 0.0), 1),
            "budget": {"max_cpu_share": cfg.max_cpu_share, "cpu_share": round(self.cpu_share(), 4),
                       "max_runs_per_day": cfg.max_runs_per_day,
                       "pause_live_runs_per_min": cfg.pause_live_runs_per_min},
            "last": self.last,
        }  # fmt: skip
