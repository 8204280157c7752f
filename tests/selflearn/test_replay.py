"""Corpus replay through the admin API on the real app (in-process): conversations uploaded and
stored as synthetic users, questions asked through /v1/context, answers scored from evidence ids;
stored histories reused; a broken retrieval lowers recall."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from selflearn.emulator.world import WorldSpec, generate
from tests.conftest import ADMIN_KEY
from tests.helpers import eventually
from tests.selflearn.manager_helpers import activate

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
RUNS = "/v1/selflearn/emulator/runs"
CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"


async def replayed(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(RUNS, json=body, headers=ADMIN)
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["id"]

    async def ended() -> dict[str, Any] | None:
        view: dict[str, Any] = (await client.get(f"{RUNS}/{run_id}", headers=ADMIN)).json()
        return None if view["status"] == "running" else view

    view: dict[str, Any] = await eventually(ended, 120)
    assert view["status"] == "completed" and view["kind"] == "replay", view
    return view


async def upload(client: httpx.AsyncClient, conversation: dict[str, Any]) -> str:
    resp = await client.post("/v1/selflearn/conversations", json=conversation, headers=ADMIN)
    assert resp.status_code == 201, resp.text
    digest: str = resp.json()["hash"]
    return digest


async def test_a_corpus_replay_scores_each_question_from_its_evidence_ids(learn_api: Any) -> None:
    garden = json.loads((CORPUS / "garden-1.json").read_text())
    async with learn_api() as api:
        pool = api.service.runtime.pool
        digest = await upload(api.client, garden)
        again = await api.client.post("/v1/selflearn/conversations", json=garden, headers=ADMIN)
        assert again.json() == {"hash": digest, "conversation_id": "garden-1", "turns": 9,
                                "questions": 5, "new": False}  # fmt: skip
        view = await replayed(api.client, {"corpus": [digest], "budget": 500})
        s = view["summary"]
        # 4 answerable questions whose evidence exists (q005's turn does not) + 1 unanswerable
        assert s["questions"] == 5 and s["users"] == 1 and s["turns"] == 9
        assert s["budget_recall"] == 1.0 and s["recall_at_5"] == 1.0
        assert s["answer_in_context"] == 1.0
        assert s["abstention_correctness"] == 0.0  # its best memory scores above the floor
        assert s["by_type"]["multi_hop"]["questions"] == 1
        assert view["source"] == {"corpus": [digest], "hash": view["source"]["hash"]}
        rows = await pool.fetch(
            "SELECT question_id, evidence, expected, context_hit, budget FROM "
            "selflearn.replay_answers WHERE emulator_run_id = $1 ORDER BY question_id",
            view["id"],
        )
        assert [r["question_id"][-4:] for r in rows] == ["q000", "q001", "q002", "q003", "q004"]
        turns = await pool.fetch("SELECT id FROM maas.messages ORDER BY id")
        ids = [t["id"] for t in turns]  # D1:1..D1:5, D2:1..D2:4
        assert rows[1]["evidence"] == [ids[2], ids[6]]  # D1:3 and D2:2
        assert rows[3]["evidence"] == [ids[7]]  # D2:3; D9:9 does not exist
        assert rows[4]["evidence"] == [] and rows[4]["context_hit"] is None
        assert {r["budget"] for r in rows} == {500}
        kinds = await pool.fetch("SELECT DISTINCT client_type, stop_at FROM maas.pipeline_runs")
        assert [tuple(r) for r in kinds] == [("emulator", "READY")]


async def test_stored_histories_are_reused_and_a_broken_retrieval_lowers_recall(
    learn_api: Any,
) -> None:
    """The same world asked twice: once with the defaults, once with a score floor that only
    the very best memories pass. The second replay stores nothing new (the same users, same
    memories) and finds clearly less of the evidence."""
    spec = {"users": 2, "sessions": 5, "turns": 60}
    async with learn_api() as api:
        api.client.headers.update(ADMIN)
        pool = api.service.runtime.pool
        first = await replayed(api.client, {"world": spec, "seed": 3, "budget": 2000})
        s1 = first["summary"]
        world = generate(WorldSpec(3, **spec))
        assert first["source"]["world"] == world.describe()
        assert s1["histories_reused"] is False and s1["users"] == 2
        users = await pool.fetchval("SELECT count(*) FROM maas.users")
        memories = await pool.fetchval("SELECT count(*) FROM maas.memories")
        await activate(api.client, {"retrieval.min_score": 1.0}, "break retrieval")
        second = await replayed(api.client, {"world": spec, "seed": 3, "budget": 2000})
        s2 = second["summary"]
        assert s2["histories_reused"] is True and s2["questions"] == s1["questions"]
        assert await pool.fetchval("SELECT count(*) FROM maas.users") == users
        assert await pool.fetchval("SELECT count(*) FROM maas.memories") == memories
        assert s1["budget_recall"] >= 0.8, s1
        assert s2["budget_recall"] <= s1["budget_recall"] - 0.15, (s1, s2)
        versions = await pool.fetch(
            "SELECT DISTINCT r.param_version FROM selflearn.replay_answers a "
            "JOIN maas.pipeline_runs r ON r.id = a.run_id WHERE a.emulator_run_id = $1",
            second["id"],
        )
        assert [v["param_version"] for v in versions] == ["tuner-1"]


async def test_replay_input_errors_have_the_house_shape(learn_api: Any) -> None:
    async with learn_api(sensor=False) as api:
        bad = await api.client.post(
            "/v1/selflearn/conversations", json={"conversation_id": "x"}, headers=ADMIN
        )
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
        assert "sessions" in bad.json()["error"]["message"]
        unknown = await api.client.post(RUNS, json={"corpus": ["a" * 64]}, headers=ADMIN)
        assert unknown.status_code == 400 and "unknown conversation" in unknown.text
        big = await api.client.post(RUNS, json={"world": {"users": 501}}, headers=ADMIN)
        assert big.status_code == 422


def replay_spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "fix-the-floor",
        "goal": "issue #16: replay experiments",
        "baseline": {"retrieval.min_score": 5.0},  # nothing passes: nothing is retrieved
        "variant": {"retrieval.min_score": 0.05},
        "primary_metric": "budget_recall",
        "guardrails": [{"metric": "latency_p95_ms", "margin": 5000}],
        "min_sample": 3,  # latency is a per-user figure: 6 users, 6 clusters (1/64 < α/2)
        "alpha": 0.05,
        "bootstrap_resamples": 300,
        "replay": {"world": {"seed": 4, "users": 6, "sessions": 4, "turns": 40},
                   "budget": 1000, "concurrency": 3},
    }  # fmt: skip
    spec.update(changes)
    return spec


async def test_a_replay_experiment_pins_its_arms_user_by_user_and_ships_the_fix(
    learn_api: Any,
) -> None:
    """Both arms over one stored copy of the world, a version pinned per synthetic user, the
    arm going first alternating; a client asking meanwhile keeps the version in force."""
    async with learn_api() as api:
        api.client.headers.update(ADMIN)
        pool = api.service.runtime.pool
        resp = await api.client.post("/v1/selflearn/experiments", json={"spec": replay_spec()})
        assert resp.status_code == 202, resp.text
        exp_id = resp.json()["id"]
        alice = await api.user("alice")
        await alice.post("/v1/threads", json={"title": "x"})

        async def pinned() -> bool:
            return bool(await pool.fetchval("SELECT count(*) FROM selflearn.param_pins"))

        await eventually(pinned, 120)
        mine = await alice.post("/v1/context", json={"query": "anything at all"})
        assert mine.status_code == 200
        run = (await alice.get(f"/v1/runs/{mine.json()['run_id']}")).json()
        assert run["param_version"] == "builtin"  # nobody else is steered

        async def ended() -> dict[str, Any] | None:
            view: dict[str, Any] = (
                await api.client.get(f"/v1/selflearn/experiments/{exp_id}")
            ).json()
            return None if view["status"] == "running" else view

        view = await eventually(ended, 180)
        assert view["status"] == "done", view
        verdict = (await api.client.get(f"/v1/selflearn/experiments/{exp_id}/verdict")).json()
        recall = verdict["metrics"]["budget_recall"]
        assert verdict["verdict"] == "SHIP", (verdict["reasons"], verdict["checks"])
        assert recall["baseline"] == 0.0 and recall["variant"] > 0.8
        replay = verdict["checks"]["replay"]
        assert replay["reingested"] is False and replay["other_version"] == {
            "baseline": 0, "variant": 0}  # fmt: skip
        assert replay["answers"]["baseline"] == replay["answers"]["variant"] == recall[
            "n_baseline"] + replay["by_type"]["baseline"].get("unanswerable", {}).get(
            "questions", 0)  # fmt: skip
        assert set(replay["by_type"]["variant"]) >= {"single_fact", "paraphrased", "temporal"}
        assert view["source"]["world"]["users"] == 6
        assert await pool.fetchval("SELECT count(*) FROM selflearn.param_pins") == 0
        # one stored copy: 6 synthetic users; every answer ran with its arm's version
        synthetic = "SELECT count(*) FROM maas.users WHERE name LIKE 'experiment %'"
        assert await pool.fetchval(synthetic) == 6
        labels = await pool.fetch(
            "SELECT a.arm, r.param_version, count(*) AS n FROM selflearn.replay_answers a "
            "JOIN maas.pipeline_runs r ON r.id = a.run_id GROUP BY 1, 2 ORDER BY 1"
        )
        versions = view["versions"]
        assert [(r["arm"], r["param_version"]) for r in labels] == [
            ("baseline", f"tuner-{versions['baseline']}"),
            ("variant", f"tuner-{versions['variant']}"),
        ]
        firsts = await pool.fetch(
            "SELECT DISTINCT ON (user_id) arm FROM selflearn.replay_answers ORDER BY user_id, id"
        )
        assert {r["arm"] for r in firsts} == {"baseline", "variant"}  # interleaved
