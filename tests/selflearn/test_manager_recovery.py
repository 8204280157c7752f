"""Restarts: a cycle is never left running. A shutdown aborts the cycles of the process; a
cycle whose process died (its lease ran out) is resumed when only the decision on a stored
verdict was missing, and otherwise marked aborted, with the experiment it was running."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from maas.params import validate
from tests.helpers import eventually
from tests.selflearn.manager_helpers import BASE, FIXED, ended, goal, managed

ORPHAN = """
INSERT INTO selflearn.cycles (kind, goal_id, status, phase, state, requested_by, lease_token,
                              lease_until, config)
VALUES ($1, $2, 'running', 'experiment', $3::jsonb, 'test', gen_random_uuid(),
        now() - interval '1 minute', '{}')
RETURNING id
"""


async def _experiment(conn: Any, status: str, verdict: str | None) -> uuid.UUID:
    """An experiment as the Teacher leaves it: arms' versions, and a verdict when it ended."""
    spec = json.dumps({"variant": FIXED, "primary_metric": "found_anything_rate"})
    exp_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO selflearn.experiments (name, spec, spec_hash, mode, status) "
        "VALUES ('orphan', $1::jsonb, 'h', 'paired', $2) RETURNING id", spec, status
    )  # fmt: skip
    for arm, params in (("baseline", {"retrieval.min_score": 5.0}), ("variant", FIXED)):
        await conn.execute(
            "INSERT INTO selflearn.experiment_parameters (params, reason, created_by, "
            "experiment_id, arm) VALUES ($1::jsonb, 'test', 'teacher', $2, $3)",
            json.dumps(validate(params)), exp_id, arm,
        )  # fmt: skip
    if verdict:
        primary = {"role": "primary", "baseline": 0.0, "variant": 1.0, "delta": 1.0,
                   "ci": [1.0, 1.0], "p_holm": 0.0}  # fmt: skip
        metrics = {"found_anything_rate": primary}
        await conn.execute(
            "INSERT INTO selflearn.verdicts (experiment_id, spec_hash, verdict, reasons, "
            "recommendations, metrics, checks) VALUES ($1, 'h', $2, $3, $4, $5::jsonb, '{}')",
            exp_id, verdict, ["primary better"], ["ship it"], json.dumps(metrics),
        )  # fmt: skip
    return exp_id


async def _orphan(
    db_url: str, kind: str, goal_id: int, exp: str | None, verdict: str | None
) -> Any:
    conn = await asyncpg.connect(db_url)
    try:
        exp_id = await _experiment(conn, exp, verdict) if exp else None
        state = json.dumps({"experiments": [str(exp_id)]} if exp_id else {})
        cycle_id = await conn.fetchval(ORPHAN, kind, goal_id, state)
        if exp_id:
            await conn.execute(
                "INSERT INTO selflearn.cycle_experiments VALUES ($1, $2, 'macro', NULL)",
                cycle_id, exp_id,
            )  # fmt: skip
        return cycle_id, exp_id
    finally:
        await conn.close()


async def test_orphaned_cycles_are_aborted_or_resumed(db_url: str, tmp_path: Path) -> None:
    conn = await asyncpg.connect(db_url)
    goal_id = await conn.fetchval(
        "INSERT INTO selflearn.goals (name, metric, direction, target) "
        "VALUES ('g', 'found_anything_rate', 'increase', 0.8) RETURNING id"
    )
    await conn.close()
    # 1. its process died mid-experiment: not resumable
    dead, exp = await _orphan(db_url, "macro", goal_id, "running", None)
    async with managed(db_url, tmp_path) as api:
        c = api.client
        view = await ended(c, str(dead), 20)
        assert (view["status"], view["outcome"]) == ("aborted", "interrupted"), view
        assert "'experiment'" in view["error"] and "not resumable" in view["error"]
        experiment = (await c.get(f"{BASE}/experiments/{exp}")).json()
        assert experiment["status"] == "failed" and "interrupted" in experiment["error"]
        report = (await c.get(f"{BASE}/reports/{dead}")).text
        assert "aborted" in report
        # 2. it died after the Teacher's verdict: the decision is made now
        resumed, exp2 = await _orphan(db_url, "macro", goal_id, "done", "SHIP")
        view = await ended(c, str(resumed), 20)
        assert (view["status"], view["outcome"]) == ("done", "shipped"), view
        active = (await c.get(f"{BASE}/parameters/active")).json()["active"]
        assert active["experiment_id"] == str(exp2) and active["arm"] == "variant"
        facts = (await c.get(f"{BASE}/reports/{resumed}", params={"format": "json"})).json()
        assert facts["cycle"]["outcome"] == "shipped"
        # nothing is left running, and a new cycle can start
        assert (await c.get(f"{BASE}/cycles", params={"status": "running"})).json() == []


async def test_a_shutdown_aborts_the_running_cycle(db_url: str, tmp_path: Path) -> None:
    async with managed(db_url, tmp_path) as api:
        c = api.client
        g = await goal(c)
        body = {"kind": "macro", "goal_id": g["id"], "variant": {"retrieval.w_trgm": 1.0},
                "dialogs": 90}  # fmt: skip
        started = (await c.post(f"{BASE}/cycles", json=body)).json()

        async def experimenting() -> bool:
            view = (await c.get(f"{BASE}/cycles/{started['id']}")).json()
            return bool(view["experiments"])

        await eventually(experimenting, 30)
    async with managed(db_url, tmp_path) as api:  # the restart
        c = api.client

        async def settled() -> Any:
            view = (await c.get(f"{BASE}/cycles/{started['id']}")).json()
            return view if view["experiments"][0]["status"] != "running" else None

        view = await eventually(settled, 10)
        assert (view["status"], view["outcome"]) == ("aborted", "stopped"), view
        assert view["error"] == "shut down during 'experiment'"
        # the experiment ended as it wound down, or the recovery ended it
        assert [x["status"] for x in view["experiments"]] in (["stopped"], ["failed"])
        assert (await c.get(f"{BASE}/parameters/active")).json()["active"] is None
        again = await c.post(f"{BASE}/cycles", json={**body, "dialogs": 3})
        assert again.status_code == 202, again.text
        assert (await c.post(f"{BASE}/cycles/{again.json()['id']}/stop")).status_code == 200
        await ended(c, again.json()["id"], 30)
