"""A cycle as its runners see it: the `Cycle` being run and the part of the Manager a runner
uses (`CycleHost`). The runners of deep and replayed searches (deep.py, search.py) and the
schedule depend on this module, not on cycles.py, so that the Manager's module can import them
without a circle."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from maas.host import ExtensionHost
from selflearn.manager import teaching
from selflearn.manager.settings import ManagerSettings


def fresh_seed(cycle_id: uuid.UUID, purpose: str) -> int:
    """A seed of this cycle's own for `purpose` (never the default seed 1 of every cycle)."""
    return uuid.uuid5(cycle_id, purpose).int % (2**31 - 1)


class CycleStopped(Exception):
    """A person (or shutdown) stopped the cycle."""


class CycleFailed(Exception):
    """A step could not be completed; recorded on the cycle."""


@dataclass
class Cycle:
    """A running cycle in this process: what it is doing, for the heartbeat to write."""

    id: uuid.UUID
    kind: str
    goal: dict[str, Any] | None
    config: dict[str, Any]
    state: dict[str, Any]
    token: uuid.UUID
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    requested_by: str = ""
    phase: str = "starting"
    progress: float = 0.0
    shutdown: bool = False

    def check(self) -> None:
        if self.stop.is_set():
            raise CycleStopped("shut down" if self.shutdown else "stopped by a person")

    def span(self, low: float, high: float, phase: str) -> Callable[[float], Awaitable[bool]]:
        """A progress callback mapping a step's 0..1 onto [low, high] of the cycle."""
        self.phase = phase

        async def tick(share: float) -> bool:
            self.progress = max(self.progress, low + (high - low) * min(max(share, 0.0), 1.0))
            return self.stop.is_set()

        return tick


class CycleHost(Protocol):
    """What a cycle's runner may ask of the Manager (selflearn/manager/cycles.py)."""

    host: ExtensionHost
    settings: ManagerSettings
    running: dict[uuid.UUID, tuple[asyncio.Task[None], Cycle]]

    def pool(self) -> Any: ...

    async def start(
        self, kind: str, goal_id: int | None, config: dict[str, Any], who: str
    ) -> dict[str, Any]: ...

    async def save_state(self, cycle: Cycle) -> None: ...

    async def experiment(
        self,
        cycle: Cycle,
        variant: dict[str, Any],
        size: teaching.Size,
        role: str,
        span: Any,
        replay: dict[str, Any] | None = None,
        reuse_baseline: uuid.UUID | None = None,
    ) -> uuid.UUID: ...

    async def measure_goal(
        self, cycle: Cycle, metrics: dict[str, Any], source: str, version: str, in_force: bool
    ) -> None: ...

    async def decide(
        self, cycle: Cycle, exp_id: uuid.UUID, always_propose: str | None = None
    ) -> tuple[str, dict[str, Any]]: ...


async def decide_once(
    m: CycleHost, cycle: Cycle, exp_id: uuid.UUID, always_propose: str | None = None
) -> tuple[str, dict[str, Any]]:
    cycle.phase = "deciding"
    outcome, result = await m.decide(cycle, exp_id, always_propose)
    cycle.state["decided"] = outcome
    await m.save_state(cycle)
    return outcome, result
