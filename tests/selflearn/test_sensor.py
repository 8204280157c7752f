"""The sensor: exactly one row per finished run, backfill after downtime, idempotent replay,
statistics, history that survives purges of MaaS tables, and user erasure that reaches it."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from maas.db.pool import connect
from selflearn.sensor import Sensor
from tests.conftest import ADMIN_KEY
from tests.helpers import close_and_archive, eventually

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
FINISHED = """SELECT count(*) FROM maas.pipeline_runs
WHERE status IN ('COMPLETED', 'FAILED') OR (status = 'READY' AND stop_at = 'READY')"""
FAILED_RUN = """INSERT INTO maas.pipeline_runs (user_id, query, status, mode, error)
VALUES ($1::text::uuid, 'doomed', 'FAILED', 'offline', $2) RETURNING id"""


SILENT_FAILED_RUN = """INSERT INTO maas.pipeline_runs
  (user_id, query, status, mode, error, failed_at)
VALUES ($1::text::uuid, 'silent', 'FAILED', 'offline', 'analyzer: silent', now()) RETURNING id"""


async def caught_up(pool: Any) -> bool:
    finished = await pool.fetchval(FINISHED)
    events = await pool.fetchval("SELECT count(*) FROM selflearn.sensor_events")
    return bool(finished) and finished == events


async def traffic(api: Any, name: str = "alice") -> dict[str, Any]:
    """A chat, a remembered fact asked back through chat and /v1/context, and a failed run."""
    client = await api.user(name)
    first = (await client.post("/v1/chat", json={"message": "My locker code is 4711."})).json()
    await close_and_archive(client, first["thread_id"])
    again = (await client.post("/v1/chat", json={"message": "What is my locker code?"})).json()
    context = (await client.post("/v1/context", json={"query": "locker code"})).json()
    me = (await client.get("/v1/users/me")).json()["user_id"]
    pool = api.service.runtime.pool
    failed = await pool.fetchval(FAILED_RUN, me, "analyzer: RateLimitError: 429 after retries")
    return {"client": client, "user_id": me, "first": first, "again": again,
            "context": context, "failed": failed}  # fmt: skip


async def test_one_row_per_finished_run_with_its_fields(learn_api: Any) -> None:
    async with learn_api() as api:
        pool = api.service.runtime.pool
        made = await traffic(api)
        await eventually(lambda: caught_up(pool))
        rows = {r["run_id"]: r for r in await pool.fetch("SELECT * FROM selflearn.sensor_events")}
        assert len(rows) == await pool.fetchval(FINISHED) == 4

        again = rows[uuid.UUID(made["again"]["run_id"])]
        assert str(again["user_id"]) == made["user_id"] and again["client_type"] == "client"
        assert again["status"] == "COMPLETED" and again["mode"] == "offline"
        assert again["param_version"] and again["experiment_arm"] is None
        assert again["error_class"] is None and again["failed_stage"] is None
        assert again["finished_at"] > again["started_at"]
        timings = made["again"]["timings_ms"]
        for stage in ("queue", "analyzer", "assembler", "responder"):
            assert again[f"{stage}_ms"] == pytest.approx(timings[stage], abs=0.011)
        assert again["latency_ms"] == pytest.approx(timings["total"], abs=0.011)
        assert again["prompt_tokens"] > 0 and again["completion_tokens"] > 0
        assert again["llm_calls"] == 2  # analyzer + responder (offline, logged all the same)
        assert again["memories_retrieved"] >= again["memories_used"] >= 1
        assert again["found_anything"] is True and again["context_tokens"] > 0

        first = rows[uuid.UUID(made["first"]["run_id"])]
        assert first["found_anything"] is False and first["memories_retrieved"] == 0

        context = rows[uuid.UUID(made["context"]["run_id"])]
        assert context["status"] == "READY" and context["stop_at"] == "READY"
        assert context["responder_ms"] is None and context["found_anything"] is True

        failed = rows[made["failed"]]
        assert failed["status"] == "FAILED" and failed["error_class"] == "llm"
        assert failed["failed_stage"] == "queue"

        emulated = await made["client"].post(
            "/v1/chat", json={"message": "my locker code?"}, headers={"X-MaaS-Client": "emulator"}
        )
        run_id = uuid.UUID(emulated.json()["run_id"])
        await eventually(lambda: caught_up(pool))
        row = await pool.fetchrow("SELECT * FROM selflearn.sensor_events WHERE run_id = $1", run_id)
        assert row["client_type"] == "emulator"
        # retrieval provenance is kept for emulator runs only (the teacher's probes)
        kept = "SELECT run_id FROM selflearn.sensor_retrievals"
        assert [r["run_id"] for r in await pool.fetch(kept)] == [run_id]
        detail = (await made["client"].get(f"/v1/runs/{run_id}")).json()
        assert detail["client_type"] == "emulator"  # the run detail says who sent it
        with pytest.raises(asyncpg.CheckViolationError):  # never recorded by the API either
            await pool.execute("UPDATE maas.pipeline_runs SET client_type = 'robot'")


async def test_backfill_of_runs_made_while_the_sensor_was_stopped(learn_api: Any) -> None:
    async with learn_api(sensor=False) as api:
        await traffic(api)
        pool = api.service.runtime.pool
        assert await pool.fetchval("SELECT count(*) FROM selflearn.sensor_events") == 0
    async with learn_api() as api:  # the sensor starts: everything it missed is recorded
        pool = api.service.runtime.pool
        await eventually(lambda: caught_up(pool))
        assert await pool.fetchval("SELECT count(*) FROM selflearn.sensor_events") == 4
        stats = (await api.client.get("/v1/selflearn/sensor/stats", headers=ADMIN)).json()
        assert stats == {"maas_finished_runs": 4, "sensor_events": 4, "lag_s": 0.0}
        # and new runs are recorded as they finish
        carol = await api.user("carol")
        await carol.post("/v1/chat", json={"message": "One more thing."})
        await eventually(lambda: caught_up(pool))
        assert await pool.fetchval("SELECT count(*) FROM selflearn.sensor_events") == 5


async def test_replay_is_idempotent_and_stats_report_the_lag(learn_api: Any, db_url: str) -> None:
    async with learn_api(sensor=False) as api:
        await traffic(api)
        pool = api.service.runtime.pool
        stats = (await api.client.get("/v1/selflearn/sensor/stats", headers=ADMIN)).json()
        assert stats["maas_finished_runs"] == 4 and stats["sensor_events"] == 0
        assert stats["lag_s"] > 0
        sensor = Sensor(lambda: db_url, batch=3)  # batches smaller than the backlog
        conn = await connect(db_url)
        try:
            assert await sensor.sweep(conn) == 4
            assert await sensor.sweep(conn) == 0
            run_ids = [r["id"] for r in await pool.fetch("SELECT id FROM maas.pipeline_runs")]
            assert await sensor.capture(conn, run_ids) == 0  # a replayed notification
        finally:
            await conn.close()
        assert await pool.fetchval("SELECT count(*) FROM selflearn.sensor_events") == 4


async def test_history_survives_purges_and_erasure_reaches_it(learn_api: Any) -> None:
    async with learn_api() as api:
        pool = api.service.runtime.pool
        alice, bob = await traffic(api, "alice"), await traffic(api, "bob")
        await eventually(lambda: caught_up(pool))
        await pool.execute("DELETE FROM maas.pipeline_runs WHERE user_id = $1::text::uuid",
                           bob["user_id"])  # fmt: skip
        held = "SELECT count(*) FROM selflearn.sensor_events WHERE user_id = $1::text::uuid"
        assert await pool.fetchval(held, bob["user_id"]) == 4  # runs purged, history kept

        assert (await alice["client"].delete("/v1/users/me")).status_code == 200
        assert await pool.fetchval(held, alice["user_id"]) == 0
        erase = await api.client.delete(f"/v1/admin/users/{bob['user_id']}", headers=ADMIN)
        assert erase.status_code == 200
        assert await pool.fetchval("SELECT count(*) FROM selflearn.sensor_events") == 0


async def test_a_broken_sensor_never_blocks_maas_and_catches_up(learn_api: Any) -> None:
    async with learn_api() as api:
        pool = api.service.runtime.pool
        await pool.execute("ALTER TABLE selflearn.sensor_events RENAME TO sensor_events_away")
        client = await api.user("alice")
        for i in range(3):
            resp = await client.post("/v1/chat", json={"message": f"Note number {i}."})
            assert resp.status_code == 200 and resp.json()["status"] == "COMPLETED"
        sensor = api.app.state.selflearn_sensor
        await eventually(lambda: _async(sensor.health.last_error is not None))
        await pool.execute("ALTER TABLE selflearn.sensor_events_away RENAME TO sensor_events")
        await eventually(lambda: caught_up(pool), timeout=20)


async def _async(value: Any) -> Any:
    return value


async def test_the_sensor_hears_runs_through_the_process_listener(learn_api: Any) -> None:
    """No LISTEN of its own: with its sweep an hour away, a run that sent no NOTIFY at all is
    recorded once the process's signals pass its notification on (what the one listener does
    with each one it hears: maas.host.ExtensionHost.subscribe_runs)."""
    async with learn_api(sensor_poll_s=3600.0) as api:
        pool = api.service.runtime.pool
        client = await api.user("alice")
        me = (await client.get("/v1/users/me")).json()["user_id"]
        await eventually(lambda: sensor_connected(api))  # its start-up sweep is done
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")  # no trigger
            run_id = await conn.fetchval(SILENT_FAILED_RUN, me)
        api.service.signals.on_run("FAILED", str(run_id))
        count = "SELECT count(*) FROM selflearn.sensor_events WHERE run_id = $1"
        assert await eventually(lambda: pool.fetchval(count, run_id), timeout=10) == 1
        listening = await pool.fetch(
            "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE '%listener%'"
        )
        assert [r["application_name"] for r in listening] == ["maas-listener"]


async def sensor_connected(api: Any) -> bool:
    sensor = api.app.state.selflearn_sensor
    return bool(sensor.health.connected and sensor.health.last_sweep is not None)
