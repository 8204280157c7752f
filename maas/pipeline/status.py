"""Run statuses; mirrors the SQL enum maas.run_status."""

from __future__ import annotations

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


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED})
# Where a run waits before each stage claims it.
QUEUED: dict[str, str] = {
    Status.NEW: "analyzer",
    Status.ANALYZED: "assembler",
    Status.READY: "responder",
}


def is_done(status: str, stop_at: str) -> bool:
    return status in TERMINAL or status == stop_at
