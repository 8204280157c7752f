"""The Tuner's ParamSource: MaaS reads its active parameters from selflearn.experiment_parameters.

Plugged in by the extension (maas never imports selflearn). The state (active version, running
experiment) is cached and re-read at most every `poll_s`, so a switch made anywhere reaches new
runs within one poll interval, without a restart; a switch made in this process invalidates the
cache at once. With no active version, or when the database cannot be read, MaaS's own source
(built-in defaults + MAAS_PARAMS) answers: self-learning never stops MaaS from serving.

While an experiment runs it steers the parameters: a version pinned to a synthetic user (or to
one of its threads) serves that user's runs (or that thread's archive jobs) only — a replay's
arms take turns user by user over the same stored memories while every other user keeps the
version in force; a paired dialog experiment's live arm serves every new run; a split experiment
assigns each thread to an arm by a hash of (experiment, thread), so every run of a thread uses
the same arm and the assignment is reproducible. Pins are written by selflearn only (admin work):
nothing a tenant sends chooses a version.

Otherwise, while the active version is monitored (teacher/guardrails.py: its first
MAAS_SELFLEARN_AUTO_ROLLBACK_HORIZON_H after activation), a share of threads
(MAAS_SELFLEARN_AUTO_ROLLBACK_CONTROL_SHARE, by a hash of the active version and the thread) keeps
the last good version's parameters — MaaS's own when there is none: the monitor's concurrent
control.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maas.params import ParamSet, ParamSource, validate
from selflearn.queries import q

log = logging.getLogger(__name__)


def arm_for(experiment_id: uuid.UUID | str, thread_id: uuid.UUID | str) -> str:
    """Deterministic 50/50 arm of a thread in an experiment."""
    digest = hashlib.sha256(f"{experiment_id}:{thread_id}".encode()).digest()
    return "variant" if int.from_bytes(digest[:8], "big") % 2 else "baseline"


def control_for(active_label: str, thread_id: uuid.UUID | str, share: float) -> bool:
    """Whether a thread is in the monitor's control while `active_label` is monitored."""
    digest = hashlib.sha256(f"control:{active_label}:{thread_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _set(raw: dict[str, Any] | None) -> ParamSet | None:
    if not raw:
        return None
    return ParamSet(raw["label"], validate(raw["params"]))  # guarded again on the way in


@dataclass(frozen=True)
class SourceState:
    active: ParamSet | None = None
    experiment_id: str | None = None
    mode: str | None = None
    live_arm: str | None = None
    arms: dict[str, ParamSet] = field(default_factory=dict)
    monitored: bool = False  # the active version has a concurrent control
    control: ParamSet | None = None  # the last good version (None: MaaS's own parameters)
    control_share: float = 0.0
    pins: dict[str, ParamSet] = field(default_factory=dict)  # user or thread id -> its version

    @classmethod
    def from_row(cls, row: Any, control_share: float = 0.0) -> SourceState:
        exp, active = row["experiment"] or {}, row["active"] or {}
        arms = {arm: _set(raw) for arm, raw in (exp.get("arms") or {}).items()}
        versions = {v: _set(raw) for v, raw in (row["pinned"] or {}).items()}
        pins = {subject: versions[str(v)] for subject, v in (row["pins"] or {}).items()}
        return cls(
            _set(row["active"]),
            exp.get("id"),
            exp.get("mode"),
            exp.get("live_arm"),
            {arm: s for arm, s in arms.items() if s is not None},
            bool(active.get("monitored")),
            _set(row["control"]),
            control_share,
            {subject: s for subject, s in pins.items() if s is not None},
        )

    def in_control(self, thread_id: uuid.UUID | None) -> bool:
        if not self.monitored or self.active is None or thread_id is None:
            return False
        return control_for(self.active.version, thread_id, self.control_share)

    def pick(
        self, thread_id: uuid.UUID | None, user_id: uuid.UUID | None = None
    ) -> ParamSet | None:
        """The set a new run gets; None: MaaS's own (no active version, or a control thread
        with no good version before the active one)."""
        for subject in (thread_id, user_id):
            if subject is not None and str(subject) in self.pins:
                return self.pins[str(subject)]
        if self.mode == "paired" and self.live_arm in self.arms:
            return self.arms[self.live_arm]
        if self.mode == "split" and thread_id is not None and self.experiment_id is not None:
            return self.arms.get(arm_for(self.experiment_id, thread_id), self.active)
        if self.in_control(thread_id):
            return self.control
        return self.active


@dataclass
class TunerParams:
    pool: Callable[[], Any]  # MaaS's pool, available once the service has started
    fallback: ParamSource
    poll_s: float = 2.0
    control_share: float = 0.0  # threads kept on the last good version while monitored
    horizon_s: float = 0.0  # how long after its activation a version is monitored
    state: SourceState = field(default_factory=SourceState)
    _loaded_at: float | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _generation: int = 0  # bumped by invalidate(): a read that started before it is stale

    async def active(
        self, thread_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None
    ) -> ParamSet:
        state = await self._current()
        return state.pick(thread_id, user_id) or await self.fallback.active(thread_id, user_id)

    def invalidate(self) -> None:
        """A change was made in this process: read the state again on the next run."""
        self._generation += 1
        self._loaded_at = None

    async def _current(self) -> SourceState:
        if self._fresh():
            return self.state
        async with self._lock:  # one reader refreshes; the others wait for it
            if not self._fresh():
                await self._load()
        return self.state

    def _fresh(self) -> bool:
        return self._loaded_at is not None and time.monotonic() - self._loaded_at < self.poll_s

    async def _load(self) -> None:
        """A read that was under way when a change was made here (an archive job's, say, while
        an experiment switched arms) is not fresh: the next run reads again, and does not get
        the old arm for a whole poll interval."""
        generation = self._generation
        try:
            row = await self.pool().fetchrow(q("tuner_source_state"), self.horizon_s)
            self.state = SourceState.from_row(row, self.control_share)
        except Exception as exc:  # noqa: BLE001
            # keep serving with what we had (or MaaS's own parameters)
            log.warning("tuner parameters unreadable, keeping the last known: %s", exc)
        self._loaded_at = time.monotonic() if generation == self._generation else None
