"""The User Emulator through the admin API, against the real app (in-process ASGI transport)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from bench.scripted_llm import Reply, ScriptedLLM, default_reply
from selflearn.emulator.paraphrase import STAGE, LLMConfig, Paraphraser
from selflearn.emulator.seeds import load_personas
from selflearn.queries import q
from tests.conftest import ADMIN_KEY
from tests.helpers import eventually

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
RUNS = "/v1/selflearn/emulator/runs"


async def finished(client: httpx.AsyncClient, run_id: str, timeout: float = 90) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        resp = await client.get(f"{RUNS}/{run_id}", headers=ADMIN)
        assert resp.status_code == 200, resp.text
        view: dict[str, Any] = resp.json()
        return None if view["status"] == "running" else view

    result: dict[str, Any] = await eventually(ended, timeout)
    return result


async def test_emulator_run_plants_probes_and_records_expectations(learn_api: Any) -> None:
    async with learn_api() as api:
        pool = api.service.runtime.pool
        resp = await api.client.post(RUNS, json={"dialogs": 6, "concurrency": 2}, headers=ADMIN)
        assert resp.status_code == 202, resp.text
        view = await finished(api.client, resp.json()["id"])
        summary = view["summary"]
        assert view["status"] == "completed", view
        assert {"dialogs", "turns", "runs", "failures", "planted_fact_recall"} <= set(summary)
        assert summary["dialogs"] == 6 and summary["episodes"] == 2
        assert summary["failures"] == 0 and summary["runs"] == summary["turns"] > 10
        assert summary["planted_fact_recall"] >= 0.5  # the defaults find what was planted
        runs = await pool.fetch("SELECT client_type FROM maas.pipeline_runs")
        assert len(runs) == summary["runs"] and {r["client_type"] for r in runs} == {"emulator"}
        probes = await pool.fetch(
            "SELECT * FROM selflearn.emulator_expectations WHERE emulator_run_id = $1",
            view["id"],
        )
        first = [p for p in probes if p["attempt"] == 1]
        assert len(first) == summary["probes"] > 0
        planted = [p for p in first if p["ability"] != "abstention"]
        assert planted and all(p["fact_ids"] and p["planted"] for p in planted)
        # every planted fact was stated by a message of that user, which MaaS stored
        for p in planted:
            for ids in p["planted"].values():
                assert ids, p["planted"]
                owner = await pool.fetchval(
                    "SELECT user_id FROM maas.messages WHERE id = ANY($1::bigint[]) LIMIT 1", ids
                )
                assert owner == p["user_id"]

        # Breaking retrieval (a score floor nothing reaches) must lower recall: to zero on every
        # probe that ran on the broken version (the monitor's control keeps a share of threads
        # on MaaS's own parameters while the new version is watched).
        made = await api.client.post("/v1/selflearn/parameters/versions", headers=ADMIN, json={
            "params": {"retrieval.min_score": 5.0}, "reason": "break retrieval"})  # fmt: skip
        await api.client.post("/v1/selflearn/parameters/activate", headers=ADMIN, json={
            "version": made.json()["version"], "reason": "break retrieval"})  # fmt: skip
        again = await api.client.post(RUNS, json={"dialogs": 6, "concurrency": 2}, headers=ADMIN)
        broken = (await finished(api.client, again.json()["id"]))["summary"]
        assert broken["probes"] == summary["probes"]
        run_id = uuid.UUID(again.json()["id"])

        async def recorded() -> bool:
            return bool(await pool.fetchval(q("teacher_unrecorded"), run_id) == 0)

        await eventually(recorded)  # the sensor has every run (and its version)
        hits = await pool.fetch(
            "SELECT e.recall_hit FROM selflearn.emulator_expectations e JOIN "
            "selflearn.sensor_events s USING (run_id) WHERE e.emulator_run_id = $1 AND "
            "e.attempt = 1 AND e.ability <> 'abstention' AND s.param_version = $2",
            run_id, f"tuner-{made.json()['version']}")  # fmt: skip
        assert hits and not any(h["recall_hit"] for h in hits)


async def test_emulator_run_stops_on_request(learn_api: Any) -> None:
    async with learn_api() as api:
        resp = await api.client.post(RUNS, json={"dialogs": 90, "concurrency": 2}, headers=ADMIN)
        run_id = resp.json()["id"]
        await asyncio.sleep(0.5)
        stop = await api.client.post(f"{RUNS}/{run_id}/stop", headers=ADMIN)
        assert stop.status_code == 200 and stop.json()["stop_requested"] is True
        view = await finished(api.client, run_id, 60)
        assert view["status"] == "stopped" and view["summary"]["stopped"] is True
        assert view["dialogs"] < 90


async def test_emulator_route_errors_have_the_house_shape(learn_api: Any) -> None:
    async with learn_api(sensor=False) as api:
        missing = await api.client.get(f"{RUNS}/{uuid.uuid4()}", headers=ADMIN)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        stop = await api.client.post(f"{RUNS}/{uuid.uuid4()}/stop", headers=ADMIN)
        assert stop.status_code == 404
        for body in ({"dialogs": 0}, {"concurrency": 65}, {"seed": -1}, {"dialogs": "many"}):
            bad = await api.client.post(RUNS, json=body, headers=ADMIN)
            assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
        assert (await api.client.get(f"{RUNS}/not-a-uuid", headers=ADMIN)).status_code == 422


def rewrite_in_voice(stage: str | None, body: dict[str, Any]) -> Reply:
    """The scripted LLM: paraphrase requests get a recognisable rewrite that keeps every word;
    MaaS's own stages get the server's defaults."""
    if stage != STAGE:
        return default_reply(stage, body)
    prompt = body["messages"][-1]["content"]
    return Reply(content="Rephrased: " + prompt.split("Message: ", 1)[1])


async def test_paraphrasing_with_the_configured_llm(learn_api: Any, scripted: ScriptedLLM) -> None:
    scripted.set_handler(rewrite_in_voice)
    llm = {"llm_base_url": scripted.base_url, "llm_api_key": "sk-test", "llm_model": "scripted"}
    async with learn_api(**llm) as api:
        body = {"dialogs": 3, "concurrency": 1, "paraphrase": True}
        resp = await api.client.post(RUNS, json=body, headers=ADMIN)
        assert resp.status_code == 202, resp.text
        view = await finished(api.client, resp.json()["id"])
        assert view["status"] == "completed" and view["summary"]["failures"] == 0
        pool = api.service.runtime.pool
        said = await pool.fetch("SELECT content FROM maas.messages WHERE role = 'user'")
        assert said and all(m["content"].startswith("Rephrased: ") for m in said)
        assert view["summary"]["paraphrased_turns"] == len(said) == view["summary"]["turns"]
        asked = await pool.fetch("SELECT question FROM selflearn.emulator_expectations")
        assert asked and all(a["question"].startswith("Rephrased: ") for a in asked)
        paraphrase_calls = scripted.requests_for(STAGE)
        assert len(paraphrase_calls) == len(said)


async def test_paraphrasing_needs_an_llm_and_keeps_the_planted_words() -> None:
    rewriter = Paraphraser(LLMConfig("http://127.0.0.1:9/v1", "k", "m"))
    assert rewriter._checked("My dog is Rex.", "Rex is my dog!", "Rex") == "Rex is my dog!"
    assert rewriter._checked("My dog is Rex.", "I have a dog.", "Rex") == "My dog is Rex."
    assert rewriter._checked("Hi.", "", None) == "Hi."
    persona = load_personas()[0]
    assert await rewriter(persona, "My dog is Rex.", "Rex") == "My dog is Rex."  # unreachable
    await rewriter.close()


async def test_paraphrasing_is_refused_offline(learn_api: Any) -> None:
    async with learn_api(sensor=False) as api:
        body = {"dialogs": 3, "paraphrase": True}
        resp = await api.client.post(RUNS, json=body, headers=ADMIN)
        assert resp.status_code == 409 and resp.json()["error"]["code"] == "conflict"


async def test_a_dead_process_run_is_ended_as_failed_not_left_running(learn_api: Any) -> None:
    """Another process started one run and died (no heartbeat since); the other still beats."""
    async with learn_api(sensor=False) as api:
        runs = api.app.state.selflearn_emulator
        pool = api.service.runtime.pool
        insert = (
            "INSERT INTO selflearn.emulator_runs (seed, dialogs_requested, concurrency, target_url,"
            " heartbeat_at) VALUES (1, 3, 1, 'http://x', now() - make_interval(secs => $1))"
            " RETURNING id"
        )
        dead = await pool.fetchval(insert, 3600.0)
        alive = await pool.fetchval(insert, 1.0)  # beat a second ago: its process is alive
        await runs.beat()  # the service's own beat may have got there first: either ends it
        rows = {
            r["id"]: r
            for r in await pool.fetch(
                "SELECT id, status, error, finished_at FROM selflearn.emulator_runs"
            )
        }
        assert rows[dead]["status"] == "failed" and "interrupted" in rows[dead]["error"]
        assert rows[dead]["finished_at"] is not None
        assert rows[alive]["status"] == "running"
        assert dead not in await runs.beat()  # already ended: nothing to do twice
