"""The stage table, once: run statuses (they mirror the SQL enum maas.run_status, checked by a
test) and the stages that move a run from one to the next."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    NEW = "NEW"
    ANALYZING = "ANALYZING"
    ANALYZED = "ANALYZED"
    ASSEMBLING = "ASSEMBLING"
    READY = "READY"
    RESPONDING = "RESPONDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Stage:
    """A run waits at `queue`, is leased at `working`, and its commit leaves it at `done`."""

    name: str
    queue: Status
    working: Status
    done: Status


STAGES = (
    Stage("analyzer", Status.NEW, Status.ANALYZING, Status.ANALYZED),
    Stage("assembler", Status.ANALYZED, Status.ASSEMBLING, Status.READY),
    Stage("responder", Status.READY, Status.RESPONDING, Status.COMPLETED),
)
NEXT_STAGE = {a.name: b for a, b in zip(STAGES, STAGES[1:], strict=False)}
TERMINAL = frozenset({Status.COMPLETED, Status.FAILED})
# Where a run waits before each stage claims it: a status notification there rings that stage.
QUEUED: dict[str, str] = {s.queue.value: s.name for s in STAGES}


def is_done(status: str, stop_at: str) -> bool:
    return status in TERMINAL or status == stop_at
