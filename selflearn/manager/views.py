"""Read models of the dashboard (/ui/dashboard, in the web package): everything a page shows,
assembled from the Manager's, the Teacher's and the Tuner's tables in one place. Read-only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from maas.params import SPECS
from selflearn import tuner
from selflearn.manager import goals, plots, reports
from selflearn.queries import q
from selflearn.teacher.metrics import METRICS

FAR = datetime(9999, 1, 1, tzinfo=UTC)


async def _goal_card(conn: Any, goal: dict[str, Any]) -> dict[str, Any]:
    series = [dict(r) for r in await conn.fetch(q("mgr_goal_series"), goal["id"])]
    changes = [dict(r) for r in await conn.fetch(q("mgr_param_changes"), goal["created_at"], FAR)]
    plot = plots.goal_series(series, changes, goal["target"]) if series else None
    return {**goal, "plot": plot, "measurements": len(series)}


def _experiment_card(row: Any) -> dict[str, Any]:
    metrics = reports.metric_rows(row["metrics"] or {})
    shown = [m for m in metrics if m.get("role") in ("primary", "guardrail")]
    return {**dict(row), "bars": reports.bars(shown)}


def _proposal_card(row: Any) -> dict[str, Any]:
    evidence = row["evidence"] or {}
    rows = reports.metric_rows(evidence.get("metrics") or {})
    shown = [m for m in rows if m.get("role") in ("primary", "guardrail")]
    return {**dict(row), "bars": reports.bars(shown)}


async def overview(pool: Any, schedule: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the overview shows; `schedule`: unattended learning's state (the Manager's)."""
    async with pool.acquire() as conn:
        cards = [await _goal_card(conn, g) for g in await goals.list_goals(conn)]
        running = [dict(r) for r in await conn.fetch(q("mgr_cycle_list"), "running", None, 10, 0)]
        recent = [dict(r) for r in await conn.fetch(q("mgr_cycle_list"), None, None, 15, 0)]
        pending = await conn.fetch(q("mgr_proposal_list"), "pending", 20)
        verdicts = await conn.fetch(q("mgr_recent_verdicts"), 6)
        active = await tuner.active(conn)
    return {
        "goals": cards,
        "running": running,
        "cycles": recent,
        "proposals": [_proposal_card(p) for p in pending],
        "experiments": [_experiment_card(v) for v in verdicts],
        "active": tuner.view(active) if active else None,
        "metrics": sorted(METRICS.values(), key=lambda m: m.name),
        "params": [s for s in SPECS if not isinstance(s.default, bool)],
        "schedule": schedule,
    }


async def cycle(pool: Any, cycle_id: uuid.UUID) -> dict[str, Any] | None:
    row = await pool.fetchrow(q("mgr_cycle_get"), cycle_id)
    if row is None:
        return None
    report = await pool.fetchrow(q("mgr_cycle_report"), cycle_id)
    facts = ((report["result"] or {}).get("report")) if report["report_md"] else None
    return {"cycle": dict(row), "facts": facts, "markdown": report["report_md"]}


async def parameters(pool: Any) -> dict[str, Any]:
    """Every version (newest first) with its diff against its parent, and the audit log."""
    async with pool.acquire() as conn:
        versions = await tuner.versions(conn, 100, 0)
        # arms going live and off are the Teacher's steering, not changes of the active version
        audit = [
            a for a in await tuner.audit_log(conn, None, 100) if a["action"] != "experiment_arm"
        ]
    by_number = {v["version"]: v for v in versions}
    for v in versions:
        parent = by_number.get(v["parent"]) if v["parent"] else None
        base = parent["params"] if parent else {s: x for s, x in _defaults().items()}
        v["diff"] = tuner.diff(base, v["params"])
        v["diff_against"] = f"tuner-{v['parent']}" if parent else "defaults"
    active = next((v for v in versions if v["active"]), None)
    return {"versions": versions, "audit": audit, "active": active}


def _defaults() -> dict[str, Any]:
    from maas.params import defaults

    return dict(defaults().values)
