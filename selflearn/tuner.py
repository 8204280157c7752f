"""The Tuner: versioned parameter sets in selflearn.experiment_parameters, one active at a time.

Every change (store, prepare, activate, roll back) runs in one transaction behind an advisory
lock and writes an audit row: who, why, the experiment, the diff and the previous version. Guards
check every parameter against its range (maas.params.SPECS, the ranges IMPACTS.md documents)
before anything is stored or activated; a violation raises GuardViolation and changes nothing.
A rollback rolls forward: a new version copying the last good one becomes active.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from maas.errors import Conflict, MaasError, NotFound
from maas.params import Value, validate
from selflearn.queries import q

ACTORS = ("teacher", "manager", "person")
ARMS = ("baseline", "variant")


class GuardViolation(MaasError):
    """A parameter outside its guard range, of the wrong type, or unknown."""

    status_code = 422
    code = "parameter_out_of_range"


@dataclass(frozen=True)
class Change:
    """Who asks for a change and why; recorded in the audit log with it."""

    actor: str  # teacher | manager | person
    who: str  # a person's name, "admin api", "auto-rollback monitor" …
    reason: str
    experiment_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        if self.actor not in ACTORS:
            raise ValueError(f"actor must be one of {', '.join(ACTORS)}, not {self.actor!r}")


class ArmSpec(Protocol):
    """What prepare_experiment needs of an experiment spec."""

    @property
    def name(self) -> str: ...

    @property
    def baseline(self) -> dict[str, Any]: ...

    @property
    def variant(self) -> dict[str, Any]: ...


def guard(params: dict[str, Any]) -> dict[str, Value]:
    """The full set (defaults overlaid with `params`), every value checked against its range."""
    try:
        return validate(params)
    except ValueError as exc:
        raise GuardViolation(f"parameter guard: {exc}") from exc


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, list[Any]]:
    """{name: [before, after]} of every parameter whose value differs (None = not set)."""
    before, after = before or {}, after or {}
    names = sorted(set(before) | set(after))
    return {n: [before.get(n), after.get(n)] for n in names if before.get(n) != after.get(n)}


def _params(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    raw = row["params"]
    loaded: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else dict(raw)
    return loaded


async def audit(
    conn: Any,
    action: str,
    change: Change,
    version: int | None,
    previous: int | None,
    changed: dict[str, list[Any]] | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        q("tuner_audit"), action, change.actor, change.who, change.reason, change.experiment_id,
        version, previous, changed or {}, details or {},
    )  # fmt: skip


async def store_version(
    conn: Any,
    params: dict[str, Any],
    change: Change,
    parent: int | None = None,
    arm: str | None = None,
    action: str = "store",
) -> int:
    """Guard, then store a new (inactive) version; returns its number."""
    checked = guard(params)
    async with conn.transaction():
        parent_params = _params(await _get(conn, parent)) if parent is not None else None
        row = await conn.fetchrow(
            q("tuner_insert_version"), checked, parent, change.reason, change.actor,
            change.experiment_id, arm,
        )  # fmt: skip
        version: int = row["version"]
        await audit(conn, action, change, version, parent, diff(parent_params, checked))
    return version


async def _get(conn: Any, version: int) -> Any:
    row = await conn.fetchrow(q("tuner_get_version"), version)
    if row is None:
        raise NotFound(f"parameter version {version} not found")
    return row


async def active(conn: Any) -> Any:
    """The active version's row, or None (MaaS then uses its built-in / MAAS_PARAMS set)."""
    return await conn.fetchrow(q("tuner_active"))


async def prepare_experiment(
    conn: Any, spec: ArmSpec, experiment_id: uuid.UUID, base: dict[str, Any], who: str = "teacher"
) -> tuple[int, int]:
    """Baseline and variant versions of an experiment: `base` (the parameters in force) overlaid
    with each arm's overrides. Both are guarded first; nothing is stored if either fails."""
    arms = {
        "baseline": guard({**base, **spec.baseline}),
        "variant": guard({**base, **spec.variant}),
    }
    reason = f"experiment {spec.name}: {{arm}} arm"
    async with conn.transaction():
        await conn.execute(q("tuner_lock"))
        parent = await active(conn)
        made = []
        for arm, params in arms.items():
            change = Change("teacher", who, reason.format(arm=arm), experiment_id)
            version = await store_version(
                conn, params, change, parent["version"] if parent else None, arm, "prepare"
            )
            made.append(version)
    return made[0], made[1]


async def activate_parameter_version(conn: Any, version: int, change: Change) -> int | None:
    """Make `version` the active one, atomically; returns the previously active version. The
    stored set is guarded again (a row edited by hand must not slip through)."""
    async with conn.transaction():
        await conn.execute(q("tuner_lock"))
        row = await _get(conn, version)
        if row["rolled_back_at"] is not None and change.actor != "person":
            raise Conflict(f"version {version} was rolled back; only a person may reactivate it")
        guard(_params(row) or {})
        previous = await active(conn)
        await conn.fetch(q("tuner_deactivate"))
        await conn.fetchval(q("tuner_activate"), version)
        before = previous["version"] if previous else None
        await audit(
            conn, "activate", change, version, before, diff(_params(previous), _params(row))
        )
    return before


async def deactivate(conn: Any, change: Change) -> int | None:
    """No active version: MaaS falls back to its own parameters. Returns the one deactivated."""
    async with conn.transaction():
        await conn.execute(q("tuner_lock"))
        previous = await active(conn)
        if previous is None:
            return None
        await conn.fetch(q("tuner_deactivate"))
        await audit(conn, "deactivate", change, None, previous["version"])
    return int(previous["version"])


async def rollback_parameters(
    conn: Any,
    change: Change,
    action: str = "rollback",
    details: dict[str, Any] | None = None,
    expected: int | None = None,
) -> int | None:
    """Roll forward to a new version copying the last good one (the most recently activated
    version never rolled back from) and activate it; the version rolled back from is marked.
    With no good version to copy, deactivate: MaaS falls back to its own parameters.
    `expected`: roll back only if that version is still the active one (Conflict otherwise:
    another process rolled back or switched first). Returns the new active version (None after
    a fallback)."""
    async with conn.transaction():
        await conn.execute(q("tuner_lock"))
        current = await active(conn)
        if current is None:
            raise Conflict("no active parameter version to roll back from")
        if expected is not None and current["version"] != expected:
            raise Conflict(f"version {expected} is no longer the active one")
        good = await conn.fetchrow(q("tuner_last_good"), current["version"])
        await conn.execute(q("tuner_mark_rolled_back"), current["version"])
        await conn.fetch(q("tuner_deactivate"))
        new = None
        if good is not None:
            why = f"rollback from {current['label']} to a copy of {good['label']}: {change.reason}"
            row = await conn.fetchrow(
                q("tuner_insert_version"), guard(_params(good) or {}), good["version"], why,
                change.actor, change.experiment_id, None,
            )  # fmt: skip
            new = int(row["version"])
            await conn.fetchval(q("tuner_activate"), new)
        changed = diff(_params(current), _params(good) if good else None)
        extra = {"copied": good["version"] if good else None, **(details or {})}
        await audit(conn, action, change, new, current["version"], changed, extra)
    return new


async def versions(conn: Any, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    return [view(r) for r in await conn.fetch(q("tuner_versions"), limit, offset)]


def view(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["params"] = _params(row)
    return out


async def version(conn: Any, number: int) -> dict[str, Any]:
    return view(await _get(conn, number))


async def audit_log(
    conn: Any, experiment_id: uuid.UUID | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Newest first."""
    return [dict(r) for r in await conn.fetch(q("tuner_audit_log"), experiment_id, limit)]


async def pin(conn: Any, subject: uuid.UUID, kind: str, experiment_id: uuid.UUID, v: int) -> None:
    """Version `v` serves one synthetic user's runs (kind user) or one thread's archive jobs
    (kind thread) while the experiment runs (selflearn only: no request can pin)."""
    await conn.execute(q("tuner_pin"), subject, kind, experiment_id, v)


async def unpin(conn: Any, experiment_id: uuid.UUID) -> None:
    await conn.execute(q("tuner_unpin"), experiment_id)
