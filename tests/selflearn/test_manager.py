"""The Manager end to end, in offline mode: goals CRUD, a macro cycle that ships a fix, a
critical change that waits for a person, stop, one cycle at a time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from selflearn import tuner
from selflearn.manager import cycles
from selflearn.queries import q
from tests.selflearn.manager_helpers import BASE, BROKEN, FIXED, activate, ended, goal, managed


def exp_versions(view: dict[str, Any]) -> tuple[int, int]:
    """(baseline, variant) versions of the cycle's experiment, from its stored evidence."""
    arms = view["result"]["arms"]
    return arms["baseline"], arms["variant"]


async def test_goals_crud_and_validation(db_url: str, tmp_path: Path) -> None:
    async with managed(db_url, tmp_path) as api:
        c = api.client
        made = await goal(
            c,
            name="<b>faster</b>",
            metric="latency_p95_ms",
            target=500,
            constraints=[{"metric": "answer_accuracy", "op": ">=", "value": 0.7}],
            search_space={"retrieval.candidate_limit": [10, 200]},
        )
        assert made["direction"] == "decrease" and made["status"] == "active"
        assert made["current"] is None and made["progress"] is None
        assert (await c.get(f"{BASE}/goals/{made['id']}")).json()["name"] == "<b>faster</b>"
        again = {"name": " <B>Faster</b>", "metric": "latency_p95_ms", "target": 400}
        twice = await c.post(f"{BASE}/goals", json=again)  # the same name: refused, said why
        assert twice.status_code == 409 and "exists" in twice.json()["error"]["message"]
        flipped = {"name": "y", "metric": "answer_accuracy", "target": 1,
                   "search_space": {"retrieval.min_score": [0.5, 0.1]}}  # fmt: skip
        message = (await c.post(f"{BASE}/goals", json=flipped)).json()["error"]["message"]
        assert "the low end 0.5 must be below the high end 0.1" in message, message
        patched = await c.patch(
            f"{BASE}/goals/{made['id']}", json={"target": 400, "status": "paused"}
        )
        assert patched.json()["target"] == 400 and patched.json()["status"] == "paused"
        assert [g["id"] for g in (await c.get(f"{BASE}/goals")).json()] == [made["id"]]
        bad = [
            {"name": "x", "metric": "nope", "target": 1},
            {"name": "x", "metric": "latency_p95_ms", "target": 1, "direction": "increase"},
            {"name": "x", "metric": "answer_accuracy", "target": 1,
             "search_space": {"retrieval.min_score": [0, 99]}},
            {"name": "x", "metric": "answer_accuracy", "target": 1,
             "constraints": [{"metric": "answer_accuracy", "op": "<", "value": 1}]},
        ]  # fmt: skip
        for body in bad:
            resp = await c.post(f"{BASE}/goals", json=body)
            assert resp.status_code == 422 and resp.json()["error"]["code"], resp.text
        # a paused goal takes no cycle
        resp = await c.post(f"{BASE}/cycles", json={"kind": "macro", "goal_id": made["id"]})
        assert resp.status_code == 409, resp.text
        assert (await c.post(f"{BASE}/cycles", json={"kind": "macro"})).status_code == 400
        assert (await c.delete(f"{BASE}/goals/{made['id']}")).status_code == 204
        missing = await c.get(f"{BASE}/goals/{made['id']}")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_macro_cycle_ships_a_fix_and_reports_it(db_url: str, tmp_path: Path) -> None:
    async with managed(db_url, tmp_path) as api:
        c = api.client
        broken = await activate(c, BROKEN, "a bad change made by hand")
        g = await goal(c, constraints=[{"metric": "latency_p95_ms", "op": "<=", "value": 60000}])
        resp = await c.post(
            f"{BASE}/cycles", json={"kind": "macro", "goal_id": g["id"], "variant": FIXED}
        )
        assert resp.status_code == 202, resp.text
        started = resp.json()
        assert started["status"] == "running" and started["kind"] == "macro"
        again = await c.post(f"{BASE}/cycles", json={"kind": "micro"})
        assert again.status_code == 409  # one cycle at a time
        view = await ended(c, started["id"])
        assert view["status"] == "done" and view["outcome"] == "shipped", view
        assert view["progress"] == 1.0
        [exp] = view["experiments"]
        assert exp["verdict"] == "SHIP" and exp["role"] == "macro"
        active = (await c.get(f"{BASE}/parameters/active")).json()["active"]
        assert active["version"] != broken and active["params"]["retrieval.min_score"] == 0.05
        assert active["experiment_id"] == exp["experiment_id"]
        audit = (await c.get(f"{BASE}/audit", params={"limit": 1})).json()[0]
        assert (audit["action"], audit["actor"]) == ("activate", "manager")
        # Progress comes from a re-measurement of the version now in force (new synthetic
        # users), never from the winning arm's estimate, which won because it measured high.
        series = (await c.get(f"{BASE}/goals/{g['id']}/series")).json()
        points = [(m["source"], m["in_force"], m["param_version"])
                  for m in series["measurements"]]  # fmt: skip
        assert points == [("baseline", True, f"tuner-{exp_versions(view)[0]}"),
                          ("variant", False, active["label"]),
                          ("micro", True, active["label"])], points  # fmt: skip
        remeasured = view["result"]["remeasured"]
        assert remeasured["seed"] != 1 and remeasured["dialogs"] == 3
        now = (await c.get(f"{BASE}/goals/{g['id']}")).json()
        assert now["current"] == remeasured["value"]["value"] == series["measurements"][-1]["value"]
        assert now["current"] >= 0.5 and now["met"] == (now["current"] >= 0.8)  # broken: 0
        assert any(ch["action"] == "activate" for ch in series["changes"])
        # The test spent the goal's first share of α (an explicit variant is a test too).
        tests = (await c.get(f"{BASE}/goals/{g['id']}/tests")).json()
        first = 0.05 * 6 / math.pi**2
        assert [t["alpha"] for t in tests["tests"]] == [pytest.approx(first)]
        assert tests["next_alpha"] == pytest.approx(first / 4)
        assert view["result"]["alpha"]["alpha"] == pytest.approx(first)
        # A shipped variant the monitor rolled back may come back through one new test.
        pool = api.service.runtime.pool
        tried = await pool.fetch(q("mgr_goal_tried"), g["id"])
        assert [(dict(r["variant"]), r["tests"], r["auto_rolled_back"]) for r in tried] == [
            (FIXED, 1, False)]  # fmt: skip
        assert cycles.tried(tried) == [FIXED]
        async with pool.acquire() as conn:
            monitor = tuner.Change("teacher", "auto-rollback monitor", "a breach (simulated)")
            await tuner.rollback_parameters(conn, monitor, "auto_rollback",
                                            expected=active["version"])  # fmt: skip
        tried = await pool.fetch(q("mgr_goal_tried"), g["id"])
        assert [r["auto_rolled_back"] for r in tried] == [True] and cycles.tried(tried) == []
        md = await c.get(f"{BASE}/reports/{view['id']}")
        assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
        text = md.text
        assert "verdict **SHIP**" in text and "retrieval.min_score" in text
        assert "What changed and why" in text and "History of changes" in text
        html = await c.get(f"{BASE}/reports/{view['id']}", params={"format": "html"})
        assert "default-src 'none'" in html.headers["content-security-policy"]
        assert "<svg" in html.text and "SHIP" in html.text
        listed = (await c.get(f"{BASE}/reports")).json()
        assert [r["id"] for r in listed] == [view["id"]]


async def test_critical_change_waits_for_a_person(db_url: str, tmp_path: Path) -> None:
    async with managed(db_url, tmp_path) as api:
        c = api.client
        broken = await activate(c, BROKEN, "a bad change made by hand")
        g = await goal(c)
        variant = {**FIXED, "context.max_tokens": 6000}  # beyond the bound a cycle may set
        resp = await c.post(
            f"{BASE}/cycles", json={"kind": "macro", "goal_id": g["id"], "variant": variant}
        )
        view = await ended(c, resp.json()["id"])
        assert view["outcome"] == "proposed", view
        active = (await c.get(f"{BASE}/parameters/active")).json()["active"]
        assert active["version"] == broken  # nothing changed without a person
        [prop] = (await c.get(f"{BASE}/proposals", params={"status": "pending"})).json()
        assert any("context.max_tokens" in r for r in prop["critical_reasons"])
        assert prop["evidence"]["verdict"] == "SHIP" and prop["diff"]["context.max_tokens"]
        ok = await c.post(f"{BASE}/proposals/{prop['id']}/approve", json={"who": "ann"})
        assert ok.status_code == 200, ok.text
        assert ok.json()["status"] == "approved" and ok.json()["decided_by"] == "ann"
        active = (await c.get(f"{BASE}/parameters/active")).json()["active"]
        assert active["version"] == prop["version"]
        assert active["params"]["context.max_tokens"] == 6000
        audit = (await c.get(f"{BASE}/audit", params={"limit": 1})).json()[0]
        assert (audit["action"], audit["actor"], audit["who"]) == ("activate", "person", "ann")
        twice = await c.post(f"{BASE}/proposals/{prop['id']}/reject", json={})
        assert twice.status_code == 409 and twice.json()["error"]["code"] == "conflict"
        # and a person can roll it back
        back = await c.post(f"{BASE}/parameters/rollback", json={"reason": "too costly"})
        assert back.status_code == 200, back.text
        active = (await c.get(f"{BASE}/parameters/active")).json()["active"]
        assert active["params"]["retrieval.min_score"] == 5.0  # the last good one: broken's copy


async def test_a_person_stops_a_cycle(db_url: str, tmp_path: Path) -> None:
    async with managed(db_url, tmp_path) as api:
        c = api.client
        g = await goal(c)
        body = {"kind": "macro", "goal_id": g["id"], "variant": {"retrieval.w_trgm": 1.0},
                "dialogs": 60}  # fmt: skip
        started = (await c.post(f"{BASE}/cycles", json=body)).json()
        stop = await c.post(f"{BASE}/cycles/{started['id']}/stop")
        assert stop.status_code == 200, stop.text
        view = await ended(c, started["id"], 60)
        assert (view["status"], view["outcome"]) == ("stopped", "stopped"), view
        assert [x["status"] for x in view["experiments"]] in ([], ["stopped"])
        assert (await c.get(f"{BASE}/parameters/active")).json()["active"] is None
        again = await c.post(f"{BASE}/cycles/{started['id']}/stop")
        assert again.status_code == 409
        report = (await c.get(f"{BASE}/reports/{view['id']}")).text
        assert "stopped" in report
