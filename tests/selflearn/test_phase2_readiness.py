"""Phase 2 readiness (roadmap), the emulator/sensor items, through the Manager: a micro cycle of
102 emulated dialogs through MaaS's normal pipeline, every finished run recorded by the sensor,
the Teacher's metrics with CIs. (Verdicts, versions, activation and rollback by command and by the
degradation rule are shown by the Teacher/Tuner tests; goals, cycles start/stop, reports and the
dashboard API by the other test_manager* files.)"""

from __future__ import annotations

from pathlib import Path

from tests.selflearn.manager_helpers import BASE, ended, managed


async def test_a_hundred_dialogs_through_the_pipeline_each_run_recorded(
    db_url: str, tmp_path: Path
) -> None:
    async with managed(db_url, tmp_path, manager={"concurrency": 8}) as api:
        c = api.client
        body = {"kind": "micro", "dialogs": 100, "seed": 3}
        started = (await c.post(f"{BASE}/cycles", json=body)).json()
        view = await ended(c, started["id"], 300)
        assert view["status"] == "done", view
        facts = (await c.get(f"{BASE}/reports/{view['id']}", params={"format": "json"})).json()
        emulated, sensor = facts["micro"]["emulator"], facts["micro"]["sensor"]
        assert emulated["dialogs"] >= 100 and emulated["failures"] == 0, emulated
        assert emulated["runs"] == emulated["turns"] > 300
        pool = api.service.runtime.pool
        runs = await pool.fetchval(
            "SELECT count(*) FROM maas.pipeline_runs WHERE status IN ('COMPLETED', 'FAILED')"
        )
        events = await pool.fetchval("SELECT count(*) FROM selflearn.sensor_events")
        assert runs == events >= emulated["runs"] and sensor["runs"] == sensor["recorded"]
        metrics = facts["micro"]["metrics"]
        assert metrics["retrieval_recall"]["n"] >= 30 and metrics["retrieval_recall"]["ci"]
