"""An experiment end to end, in-process: both arms through the emulator (paired), the sensor,
the heuristic judge, a verdict stored with its spec hash; runs record their arm's version."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from maas.app import create_app
from maas.params import BuiltinParams
from selflearn.experiment_cli import table
from selflearn.extension import extend
from selflearn.paramsource import arm_for
from selflearn.settings import SelflearnSettings
from tests.conftest import ADMIN_KEY
from tests.conftest import test_settings as settings_for
from tests.helpers import eventually

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
BASE = "/v1/selflearn/experiments"
EXAMPLE = Path(__file__).resolve().parents[2] / "experiments" / "min-score-strict.yaml"


def small_spec(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    spec["emulator"] = {"dialogs": 6, "concurrency": 2, "seed": 2}
    spec["bootstrap_resamples"] = 500
    spec["variant"] = {"retrieval.min_score": 0.9}  # tests run without the vector arm
    spec.update(changes)
    return spec


async def finished(client: Any, exp_id: str, timeout: float = 120) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        await asyncio.sleep(0.3)  # the admin key is rate-limited like any other
        resp = await client.get(f"{BASE}/{exp_id}", headers=ADMIN)
        assert resp.status_code == 200, resp.text
        view: dict[str, Any] = resp.json()
        return None if view["status"] == "running" else view

    result: dict[str, Any] = await eventually(ended, timeout)
    return result


def fix_spec() -> dict[str, Any]:
    """A known effect: the baseline's floor (5.0) lets nothing through, the variant is the
    default: every probe of the variant finds memories, none of the baseline's."""
    return small_spec(
        name="fix-the-floor",
        baseline={"retrieval.min_score": 5.0},
        variant={},
        primary_metric="found_anything_rate",
        guardrails=[{"metric": "latency_p95_ms", "margin": 5000}],
        min_sample=4,
        emulator={"dialogs": 24, "concurrency": 4, "seed": 2},
    )


async def test_paired_experiment_ships_a_known_effect(learn_api: Any) -> None:
    async with learn_api() as api:
        pool = api.service.runtime.pool
        resp = await api.client.post(BASE, json={"spec": fix_spec()}, headers=ADMIN)
        assert resp.status_code == 202, resp.text
        started = resp.json()
        assert started["status"] == "running" and len(started["spec_hash"]) == 64
        again = await api.client.post(BASE, json={"spec": small_spec()}, headers=ADMIN)
        assert again.status_code == 409  # one experiment steers the parameters at a time
        assert again.json()["error"]["code"] == "conflict"
        view = await finished(api.client, started["id"])
        assert view["status"] == "done", view
        assert view["live_arm"] is None and set(view["versions"]) == {"baseline", "variant"}

        verdict = (await api.client.get(f"{BASE}/{view['id']}/verdict", headers=ADMIN)).json()
        assert verdict["spec_hash"] == started["spec_hash"]
        assert verdict["verdict"] == "SHIP", verdict["reasons"]
        assert verdict["judge_version"] == "heuristic-lexical/1"  # offline: labelled as such
        checks = verdict["checks"]
        assert checks["paired"] and checks["attrition"] == [] and checks["srm_p"] > 0.001
        assert checks["judge_agreement"] is None  # order-blind judge: not measurable
        found = verdict["metrics"]["found_anything_rate"]
        assert found["role"] == "primary" and found["n_baseline"] == found["n_variant"] == 8
        assert found["baseline"] == 0.0 and found["variant"] > 0.8 and found["ci"][0] > 0
        assert found["p_holm"] < 0.05 and checks["power"]["clusters"] == found["clusters"]

        # Every run of each arm recorded that arm's version, and the sensor names the arm.
        arms = await pool.fetch(
            """SELECT s.experiment_arm AS arm, s.param_version AS label, count(*) AS n
               FROM selflearn.sensor_events s
               WHERE s.client_type = 'emulator' GROUP BY 1, 2 ORDER BY 1 NULLS LAST"""
        )
        labels = {a: f"tuner-{v}" for a, v in view["versions"].items()}
        assert [(r["arm"], r["label"]) for r in arms] == [
            *sorted(labels.items()),
            (None, "builtin"),
        ]
        # The arms may differ in turns (a probe is asked again when the answer missed, and the
        # variant changes answers); their first-attempt probes, the pairs, are the same in number.
        assert arms[0]["n"] > 10 and arms[1]["n"] > 10 and arms[2]["n"] > 0  # last: the warm-up
        firsts = await pool.fetch(
            """SELECT s.experiment_arm AS arm, count(*) AS n FROM selflearn.emulator_expectations e
               JOIN selflearn.sensor_events s ON s.run_id = e.run_id
               WHERE e.attempt = 1 AND s.experiment_arm IS NOT NULL GROUP BY 1 ORDER BY 1"""
        )
        assert [r["n"] for r in firsts] == [32, 32]
        judged = await pool.fetchval(
            "SELECT count(DISTINCT (run_id, swapped, repeat)) FROM selflearn.judgements "
            "WHERE judge_version = 'heuristic-lexical/1'"
        )
        assert judged == 2 * 32  # arms x probes: the order-blind judge judges each run once

        audit = await api.client.get(f"/v1/selflearn/audit?experiment_id={view['id']}",
                                     headers=ADMIN)  # fmt: skip
        assert audit.status_code == 200, audit.text
        actions = [a["action"] for a in reversed(audit.json())]
        assert actions[:2] == ["prepare", "prepare"] and actions.count("experiment_arm") == 4
        served = (await api.client.get("/v1/selflearn/parameters/active", headers=ADMIN)).json()
        assert served["active"] is None and served["serving"]["version"] == "builtin"
        listed = (await api.client.get(BASE, headers=ADMIN)).json()
        assert listed[0]["id"] == view["id"] and listed[0]["verdict"] == verdict["verdict"]

        # Erasing a synthetic user erases its judgements and retrieval provenance too.
        user = await pool.fetchval("SELECT user_id FROM selflearn.judgements LIMIT 1")
        held = """SELECT (SELECT count(*) FROM selflearn.judgements WHERE user_id = $1)
                       + (SELECT count(*) FROM selflearn.sensor_retrievals r
                          JOIN selflearn.sensor_events s USING (run_id) WHERE s.user_id = $1)"""
        assert await pool.fetchval(held, user) > 0
        erased = await api.client.delete(f"/v1/admin/users/{user}", headers=ADMIN)
        assert erased.status_code == 200
        assert await pool.fetchval(held, user) == 0


async def test_an_invalid_spec_is_refused_in_the_house_shape(learn_api: Any) -> None:
    async with learn_api(sensor=False) as api:
        bad = small_spec(variant={"retrieval.min_score": 99})
        resp = await api.client.post(BASE, json={"spec": bad}, headers=ADMIN)
        assert resp.status_code == 422
        error = resp.json()["error"]
        assert (
            error["code"] == "invalid_spec"
            and "retrieval.min_score=99 is outside" in error["message"]
        )
        count = "SELECT count(*) FROM selflearn.experiments"
        assert await api.service.runtime.pool.fetchval(count) == 0
        missing = await api.client.get(f"{BASE}/{uuid.uuid4()}/verdict", headers=ADMIN)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_cli_refuses_a_bad_file_before_contacting_maas(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(small_spec(alpha=0.9)))
    maas = Path(sys.executable).with_name("maas")
    done = subprocess.run([str(maas), "experiment", "run", str(bad), "--url", "http://127.0.0.1:9"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 2
    assert "bad.yaml: alpha: 0.9 is greater than the maximum of 0.2" in done.stderr


def test_cli_table_lists_every_metric_with_ci_and_p() -> None:
    metric = {"role": "primary", "baseline": 0.4, "variant": 0.5, "delta": 0.1, "ci": [0.05, 0.15],
              "p_value": 0.01, "p_holm": 0.02, "n_baseline": 12, "n_variant": 12}  # fmt: skip
    result = {
        "name": "x",
        "spec_hash": "ab" * 32,
        "verdict": "SHIP",
        "reasons": ["r"],
        "recommendations": ["ship it"],
        "metrics": {"retrieval_precision": metric},
    }
    text = table(result)
    assert (
        "verdict: SHIP" in text and "[+0.05, +0.15]" in text and "recommendation: ship it" in text
    )


async def test_split_experiment_assigns_threads_by_hash_and_analyses_unpaired(
    learn_api: Any,
) -> None:
    async with learn_api() as api:
        pool = api.service.runtime.pool
        refused = await api.client.post(BASE, json={"spec": small_spec(), "mode": "split"},
                                        headers=ADMIN)  # fmt: skip
        assert refused.status_code == 422 and "sensor metrics only" in refused.text
        spec = small_spec(
            name="split-probe",
            primary_metric="found_anything_rate",
            guardrails=[{"metric": "latency_p95_ms", "margin": 500}],
            min_sample=2,
        )
        resp = await api.client.post(BASE, json={"spec": spec, "mode": "split"}, headers=ADMIN)
        assert resp.status_code == 202, resp.text
        view = resp.json()
        assert view["mode"] == "split" and view["status"] == "running"
        labels = {arm: f"tuner-{v}" for arm, v in view["versions"].items()}

        alice = await api.user("alice")
        # new threads, one run each: at least ten, and three in each arm (the hash of a random
        # thread id splits ten threads 9:1 or worse about one time in fifty)
        per_arm = dict.fromkeys(labels, 0)
        while sum(per_arm.values()) < 10 or min(per_arm.values()) < 3:
            i = sum(per_arm.values())
            assert i < 40
            sent = await alice.post("/v1/chat", json={"message": f"My note number {i} is here."})
            run = (await alice.get(f"/v1/runs/{sent.json()['run_id']}")).json()
            arm = arm_for(view["id"], sent.json()["thread_id"])
            assert run["param_version"] == labels[arm]  # the thread's hash decides, every time
            per_arm[arm] += 1

        ended = await api.client.post(f"{BASE}/{view['id']}/stop", headers=ADMIN)
        assert ended.status_code == 200 and ended.json()["status"] == "done"
        verdict = (await api.client.get(f"{BASE}/{view['id']}/verdict", headers=ADMIN)).json()
        probes = sum(per_arm.values())
        assert verdict["checks"]["paired"] is False and sum(verdict["checks"]["probes"]) == probes
        assert set(verdict["metrics"]) == {"found_anything_rate", "latency_p50_ms",
                                           "latency_p95_ms", "tokens_per_dialog"}  # fmt: skip
        assert verdict["metrics"]["found_anything_rate"]["test"] == "permutation Welch t"
        recorded = await pool.fetch(
            "SELECT DISTINCT experiment_arm, param_version FROM selflearn.sensor_events"
        )
        assert {(r["experiment_arm"], r["param_version"]) for r in recorded} <= {
            (a, label) for a, label in labels.items()}  # fmt: skip
        after = await alice.post("/v1/chat", json={"message": "And after the split?"})
        run = (await alice.get(f"/v1/runs/{after.json()['run_id']}")).json()
        assert run["param_version"] == "builtin"  # the split ended with the experiment


async def test_experiments_refuse_to_run_without_the_tuners_parameter_source(
    db_url: str, tmp_path: Path
) -> None:
    """An app given its own ParamSource keeps it, so an experiment could not steer its runs."""
    learn = SelflearnSettings(_env_file=None, sensor=False)  # type: ignore[call-arg]
    app = create_app(settings_for(db_url, tmp_path), params=BuiltinParams(),
                     extensions=[lambda h: extend(h, learn)])  # fmt: skip
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://maas") as client:
            resp = await client.post(BASE, json={"spec": small_spec()}, headers=ADMIN)
            assert resp.status_code == 409, resp.text
            assert "Tuner's parameter source" in resp.json()["error"]["message"]
        pool = app.state.service.runtime.pool
        assert await pool.fetchval("SELECT count(*) FROM selflearn.experiments") == 0
