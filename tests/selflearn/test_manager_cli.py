"""`maas cycle run macro --goal ID` against a real `maas serve` process in offline mode, ending in
a verdict and an activated version; then the process is killed (SIGKILL) in the middle of a
cycle and a restarted one marks that cycle aborted."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server
from tests.faults.conftest import fault_env

BASE = "/v1/selflearn"
FAST = {
    "MAAS_SELFLEARN_SENSOR_POLL_S": "0.3",
    "MAAS_SELFLEARN_PARAMS_POLL_S": "0.2",
    "MAAS_SELFLEARN_AUTO_ROLLBACK": "false",
    "MAAS_SELFLEARN_MANAGER_MACRO_DIALOGS": "30",  # 8 scenarios: a sure effect reaches p < α
    "MAAS_SELFLEARN_MANAGER_PLAN_DIALOGS": "false",
    "MAAS_SELFLEARN_MANAGER_REMEASURE_DIALOGS": "3",
    "MAAS_SELFLEARN_MANAGER_MIN_SAMPLE": "2",
    "MAAS_SELFLEARN_MANAGER_BOOTSTRAP_RESAMPLES": "200",
    "MAAS_SELFLEARN_MANAGER_LEASE_S": "3",
    "MAAS_SELFLEARN_MANAGER_HEARTBEAT_S": "0.5",
    "MAAS_SELFLEARN_MANAGER_RECOVER_S": "0.5",
    "MAAS_IDLE_SCAN_S": "0.5",
    # a goal replays define replays a small world; nothing unattended
    "MAAS_SELFLEARN_MANAGER_WORLD_USERS": "2",
    "MAAS_SELFLEARN_MANAGER_WORLD_SESSIONS": "4",
    "MAAS_SELFLEARN_MANAGER_WORLD_TURNS": "40",
    "MAAS_SELFLEARN_MANAGER_UNATTENDED": "false",
}


def _setup(http: httpx.Client) -> int:
    """A broken active version (nothing is retrieved) and a goal to fix it."""
    broken = {"params": {"retrieval.min_score": 5.0}, "reason": "broken by hand"}
    made = http.post(f"{BASE}/parameters/versions", json=broken)
    version = made.json()["version"]
    http.post(f"{BASE}/parameters/activate", json={"version": version, "reason": "broken"})
    goal = http.post(f"{BASE}/goals", json={
        "name": "find memories", "metric": "found_anything_rate", "target": 0.8,
        "search_space": {"retrieval.min_score": [0.0, 0.1]},
    })  # fmt: skip
    assert goal.status_code == 201, goal.text
    goal_id: int = goal.json()["id"]
    return goal_id


def _wait(http: httpx.Client, cycle_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view: dict[str, Any] = http.get(f"{BASE}/cycles/{cycle_id}").json()
        if view["status"] != "running" or time.monotonic() > deadline:
            return view
        time.sleep(0.2)


@pytest.mark.slow
def test_cli_macro_cycle_then_a_crash(db_url: str, servers: list[Server], tmp_path: Path) -> None:
    server = Server(tmp_path / "data", fault_env(db_url, **FAST)).start()
    servers.append(server)
    http = server.client(ADMIN_KEY)
    goal_id = _setup(http)
    maas = Path(sys.executable).with_name("maas")
    report = tmp_path / "report.md"
    done = subprocess.run(
        [str(maas), "cycle", "run", "macro", "--goal", str(goal_id), "--url", server.url,
         "--report", str(report), "--poll", "0.3", "--json", str(tmp_path / "out.json"),
         "--shipped-params", str(tmp_path / "shipped.json")],
        env={**server.env, "MAAS_ADMIN_KEY": ADMIN_KEY},
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cycle done: shipped" in done.stderr and "%" in done.stderr  # the progress bar
    assert "verdict **SHIP**" in done.stdout and done.stdout == report.read_text()
    active = http.get(f"{BASE}/parameters/active").json()["active"]
    assert active["params"]["retrieval.min_score"] == 0.08  # a fifth of the way to 0 from 0.1
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["outcome"] == "shipped" and out["shipped"]["label"] == active["label"]
    assert out["shipped"]["params"] == active["params"]
    assert json.loads((tmp_path / "shipped.json").read_text()) == {"retrieval.min_score": 0.08}

    # a crash in the middle of a cycle: the next process marks it aborted, with its experiment
    body = {"kind": "macro", "goal_id": goal_id, "variant": {"retrieval.w_trgm": 1.0},
            "dialogs": 90}  # fmt: skip
    cycle = http.post(f"{BASE}/cycles", json=body).json()
    deadline = time.monotonic() + 30
    while not http.get(f"{BASE}/cycles/{cycle['id']}").json()["experiments"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    server.kill()
    http.close()
    again = Server(tmp_path / "data", fault_env(db_url, **FAST)).start()
    servers.append(again)
    http = again.client(ADMIN_KEY)
    view = _wait(http, cycle["id"], 30)
    assert (view["status"], view["outcome"]) == ("aborted", "interrupted"), view
    assert [x["status"] for x in view["experiments"]] == ["failed"]
    assert http.get(f"{BASE}/parameters/active").json()["active"]["version"] == active["version"]
    http.close()
