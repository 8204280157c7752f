"""`maas experiment run` against a real `maas serve` process: the verdict table on stdout, the
--json keys the issue names, and the experiment's arms recorded on its runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server
from tests.faults.conftest import fault_env, sql
from tests.selflearn.test_teacher_experiment import fix_spec


def test_maas_experiment_run_prints_the_verdict_and_writes_json(
    db_url: str, servers: list[Server], tmp_path: Path
) -> None:
    env = fault_env(db_url, MAAS_SELFLEARN_SENSOR_POLL_S="0.3", MAAS_SELFLEARN_PARAMS_POLL_S="0.3")
    server = Server(tmp_path / "data", env).start()
    servers.append(server)
    spec = tmp_path / "tiny.yaml"
    raw = fix_spec()  # a sure effect on two units: too few to prove anything
    raw.update(min_sample=2, emulator={"dialogs": 6, "concurrency": 2, "seed": 2,
                                       "warmup_dialogs": 0})  # fmt: skip
    spec.write_text(yaml.safe_dump(raw))
    out = tmp_path / "verdict.json"
    maas = Path(sys.executable).with_name("maas")
    done = subprocess.run(
        [str(maas), "experiment", "run", str(spec), "--url", server.url, "--json", str(out)],
        env={**server.env, "MAAS_ADMIN_KEY": ADMIN_KEY},
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert {"verdict", "metrics", "spec_hash"} <= set(result)
    assert result["verdict"] == "HOLD"  # 2 clusters: the best p is 1/4
    found = result["metrics"]["found_anything_rate"]
    assert found["delta"] > 0.8 and found["p_value"] == 0.5 and found["ci"] == [None, None]
    assert "2 clusters cannot show anything" in result["reasons"][0]
    for metric in result["metrics"].values():
        assert {"baseline", "variant", "delta", "ci", "p_value"} <= set(metric)
    assert "verdict: HOLD" in done.stdout and "[-inf, +inf]" in done.stdout
    assert "power: 0.00 to find a change of 0.1" in done.stdout
    assert "found_anything_rate" in done.stdout and "recommendation:" in done.stdout

    # Paired by dialog: each arm plays the same threads; the turn count may differ, because the
    # emulator asks again when an answer missed.
    arms = sql(db_url, "SELECT experiment_arm AS arm, count(DISTINCT thread_id) AS n "
                       "FROM selflearn.sensor_events WHERE client_type = 'emulator' "
                       "GROUP BY 1 ORDER BY 1")  # fmt: skip
    assert [r["arm"] for r in arms] == ["baseline", "variant"] and arms[0]["n"] == arms[1]["n"]
    stored = sql(db_url, "SELECT spec_hash, verdict FROM selflearn.verdicts")
    assert [(r["spec_hash"], r["verdict"]) for r in stored] == [
        (result["spec_hash"], result["verdict"])]  # fmt: skip
    assert "Traceback" not in server.log.read_text()
