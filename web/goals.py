"""A goal's "now" on the dashboard: the latest measurement of the version in force, with its CI.

A goal is measured on several versions: a micro cycle's batch on the version in force, an
experiment's baseline arm (a copy of the parameters in force, stored as a version of its own) and
its variant arm (never in force); a rollback makes a new version copying the last good one. "Now"
is the newest in-force measurement of the parameters in force today, whatever version label they
were measured under; a measurement of other parameters (say, before a rollback) is named as such,
never shown as today's value."""

from __future__ import annotations

from typing import Any

from selflearn import tuner
from selflearn.manager import goals
from selflearn.queries import q

BUILTIN = "builtin"  # MaaS's own parameters' version (maas.params.BuiltinParams)


def shown_name(version: str | None) -> str:
    """A version as people read it: MaaS's own parameters are `built-in`."""
    return "built-in" if version in (None, BUILTIN) else str(version)


class InForce:
    """The parameters in force (label and values) and every stored version's, by label."""

    def __init__(self, label: str, values: dict[str, Any], versions: dict[str, Any]) -> None:
        self.label, self.values, self.versions = label, values, versions

    def covers(self, version: str | None) -> bool:
        """A measurement under `version` measured the parameters in force."""
        if version == self.label:
            return True
        row = self.versions.get(version or "")
        return row is not None and row["params"] == self.values


def now_of(
    series: list[dict[str, Any]], force: InForce
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(newest in-force measurement of the parameters in force, newest of other parameters)."""
    mine = other = None
    for m in series:  # oldest first
        if m["in_force"] and force.covers(m["param_version"]):
            mine = m
        elif m["in_force"]:
            other = m
    return mine, (other if mine is None else None)


async def in_force(conn: Any, active: dict[str, Any] | None, own: Any) -> InForce:
    """`active`: the Tuner's active version (a view), None: MaaS's own set `own` is in force."""
    versions = {v["label"]: v for v in await tuner.versions(conn, 10_000, 0)}
    if active is not None:
        return InForce(str(active["label"]), dict(active["params"] or {}), versions)
    return InForce(own.version, dict(own.values), versions)


async def with_now(conn: Any, cards: list[dict[str, Any]], force: InForce) -> None:
    """Sets each card's `now` (the measurement), `before` (another set's, when the parameters in
    force are not measured yet), `in_force`, and `current`, `progress`, `met` from `now`."""
    for card in cards:
        series = [dict(r) for r in await conn.fetch(q("mgr_goal_series"), card["id"])]
        now, before = now_of(series, force)
        card["now"], card["before"], card["in_force"] = now, before, shown_name(force.label)
        card["current"] = None if now is None else now["value"]
        card["progress"] = goals.progress(card)
        card["met"] = goals.met(card["direction"], card["current"], card["target"])
