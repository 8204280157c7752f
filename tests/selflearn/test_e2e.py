"""`maas emulate` against a real `maas serve` process: dialogs through HTTP, a summary, one
sensor row per run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server
from tests.faults.conftest import fault_env, sql, wait_for


def test_maas_emulate_through_a_served_maas(
    db_url: str, servers: list[Server], tmp_path: Path
) -> None:
    env = fault_env(db_url, MAAS_SELFLEARN_SENSOR_POLL_S="0.5")
    server = Server(tmp_path / "data", env).start()
    servers.append(server)
    out = tmp_path / "summary.json"
    maas = Path(sys.executable).with_name("maas")
    done = subprocess.run(
        [str(maas), "emulate", "--dialogs", "12", "--concurrency", "4", "--seed", "7",
         "--url", server.url, "--json", str(out)],
        env={**server.env, "MAAS_ADMIN_KEY": ADMIN_KEY},
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(out.read_text())
    assert json.loads(done.stdout) == summary
    assert summary["status"] == "completed" and summary["dialogs"] == 12
    assert summary["failures"] == 0 and summary["runs"] == summary["turns"] > 20
    assert summary["planted_fact_recall"] >= 0.5  # the defaults find what was planted
    assert "dialogs" in done.stderr and "#" in done.stderr  # the progress bar

    finished = "SELECT count(*) AS n FROM maas.pipeline_runs WHERE status = 'COMPLETED'"
    assert sql(db_url, finished)[0]["n"] == summary["runs"]
    kinds = sql(db_url, "SELECT DISTINCT client_type FROM maas.pipeline_runs")
    assert [r["client_type"] for r in kinds] == ["emulator"]

    def caught_up() -> bool:
        stats = httpx.get(
            f"{server.url}/v1/selflearn/sensor/stats",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ).json()
        return bool(stats["sensor_events"] == stats["maas_finished_runs"] == summary["runs"])

    wait_for(caught_up, 20, "sensor rows for every run")
    assert "Traceback" not in server.log.read_text()


def test_maas_emulate_replays_a_corpus_and_a_world(
    db_url: str, servers: list[Server], tmp_path: Path
) -> None:
    """`maas emulate --corpus DIR --world`: the corpus uploaded, a small world generated, every
    history stored and every question asked through /v1/context of a real `maas serve`."""
    env = fault_env(db_url, MAAS_SELFLEARN_SENSOR_POLL_S="0.5")
    server = Server(tmp_path / "data", env).start()
    servers.append(server)
    out = tmp_path / "summary.json"
    maas = Path(sys.executable).with_name("maas")
    corpus = Path(__file__).resolve().parents[1] / "data" / "corpus"
    done = subprocess.run(
        [str(maas), "emulate", "--corpus", str(corpus), "--world", "--users", "1",
         "--sessions", "3", "--turns", "30", "--seed", "5", "--budget", "1000",
         "--url", server.url, "--json", str(out)],
        env={**server.env, "MAAS_ADMIN_KEY": ADMIN_KEY},
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(out.read_text())
    assert json.loads(done.stdout) == summary
    assert summary["status"] == "completed" and summary["users"] == 2
    assert summary["source"]["world"]["seed"] == 5 and len(summary["source"]["corpus"]) == 1
    asked = sql(db_url, "SELECT count(*) AS n FROM selflearn.replay_answers")[0]["n"]
    assert summary["questions"] == asked > 5
    assert summary["by_type"]["unanswerable"]["questions"] >= 1
    assert summary["budget_recall"] is not None and summary["budget"] == 1000
    assert "users asked" in done.stderr  # the progress bar
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.json").write_text('{"conversation_id": "x"}')
    refused = subprocess.run(
        [str(maas), "emulate", "--corpus", str(bad), "--url", server.url],
        env={**server.env, "MAAS_ADMIN_KEY": ADMIN_KEY},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "x.json" in refused.stderr
