"""The self-learning routes (the `selflearn` extension): every one is in the table below, and
each is admin-only — no, wrong or revoked key 401, a user key 403, in the house error shape."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from maas.app import create_app
from selflearn.extension import extend
from selflearn.settings import SelflearnSettings
from tests.conftest import ADMIN_KEY
from tests.conftest import test_settings as settings_for
from tests.security.conftest import walk
from tests.selflearn.conftest import running

ADMIN_ONLY: dict[tuple[str, str], dict[str, Any] | None] = {
    ("POST", "/v1/selflearn/emulator/runs"): {"dialogs": 3, "concurrency": 1, "seed": 1},
    ("GET", "/v1/selflearn/emulator/runs/{run_id}"): None,
    ("POST", "/v1/selflearn/emulator/runs/{run_id}/stop"): None,
    ("GET", "/v1/selflearn/sensor/stats"): None,
    ("POST", "/v1/selflearn/conversations"): {"conversation_id": "probe"},
    ("GET", "/v1/selflearn/schedule"): None,
    ("POST", "/v1/selflearn/experiments"): {"spec": {"name": "probe"}},
    ("GET", "/v1/selflearn/experiments"): None,
    ("GET", "/v1/selflearn/experiments/{experiment_id}"): None,
    ("GET", "/v1/selflearn/experiments/{experiment_id}/verdict"): None,
    ("POST", "/v1/selflearn/experiments/{experiment_id}/stop"): None,
    ("GET", "/v1/selflearn/parameters/active"): None,
    ("GET", "/v1/selflearn/parameters/versions"): None,
    ("POST", "/v1/selflearn/parameters/versions"): {"params": {}, "reason": "probe"},
    ("GET", "/v1/selflearn/parameters/versions/{version}"): None,
    ("GET", "/v1/selflearn/parameters/diff"): None,
    ("POST", "/v1/selflearn/parameters/activate"): {"version": 1, "reason": "probe"},
    ("POST", "/v1/selflearn/parameters/rollback"): {"reason": "probe"},
    ("GET", "/v1/selflearn/audit"): None,
    # the Manager (#8)
    ("POST", "/v1/selflearn/goals"): {"name": "probe", "metric": "answer_accuracy", "target": 1},
    ("GET", "/v1/selflearn/goals"): None,
    ("GET", "/v1/selflearn/goals/{goal_id}"): None,
    ("PATCH", "/v1/selflearn/goals/{goal_id}"): {"target": 0.5},
    ("DELETE", "/v1/selflearn/goals/{goal_id}"): None,
    ("GET", "/v1/selflearn/goals/{goal_id}/series"): None,
    ("GET", "/v1/selflearn/goals/{goal_id}/tests"): None,
    ("POST", "/v1/selflearn/cycles"): {"kind": "micro"},
    ("GET", "/v1/selflearn/cycles"): None,
    ("GET", "/v1/selflearn/cycles/{cycle_id}"): None,
    ("POST", "/v1/selflearn/cycles/{cycle_id}/stop"): None,
    ("GET", "/v1/selflearn/proposals"): None,
    ("GET", "/v1/selflearn/proposals/{proposal_id}"): None,
    ("POST", "/v1/selflearn/proposals/{proposal_id}/approve"): {"who": "probe"},
    ("POST", "/v1/selflearn/proposals/{proposal_id}/reject"): {"who": "probe"},
    ("GET", "/v1/selflearn/reports"): None,
    ("GET", "/v1/selflearn/reports/{cycle_id}"): None,
}


def routes(app: Any) -> set[tuple[str, str]]:
    return {(m, path) for path, r in walk(app.routes) for m in r.methods - {"HEAD"}}


def test_every_selflearn_route_is_in_the_table(tmp_path: Path) -> None:
    settings = settings_for("postgresql://unused", tmp_path)
    learn = SelflearnSettings(_env_file=None)  # type: ignore[call-arg]
    mounted = create_app(settings, extensions=[lambda h: extend(h, learn)])
    assert routes(mounted) - routes(create_app(settings)) == set(ADMIN_ONLY)


async def test_selflearn_routes_are_admin_only(db_url: str, tmp_path: Path) -> None:
    async with running(db_url, tmp_path, sensor=False) as api:
        alice, revoked = await api.user("alice"), await api.user("revoked")
        me = (await revoked.get("/v1/users/me")).json()["user_id"]
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        await api.client.post(f"/v1/admin/users/{me}/revoke", headers=admin)
        keys = [{}, {"Authorization": "Bearer maas_wrong"}, dict(revoked.headers)]
        url_ids = {"run_id": str(uuid.uuid4()), "experiment_id": str(uuid.uuid4()), "version": "1",
                   "goal_id": "1", "cycle_id": str(uuid.uuid4()), "proposal_id": "1"}  # fmt: skip
        for (method, path), body in ADMIN_ONLY.items():
            url = path.format(**url_ids)
            for headers in keys:
                resp = await api.client.request(method, url, json=body, headers=headers)
                assert resp.status_code == 401, (method, path, resp.text)
                assert resp.json()["error"]["code"] == "unauthorized"
            resp = await alice.request(method, url, json=body)
            assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden"
        assert await api.service.runtime.pool.fetchval(
            "SELECT count(*) FROM selflearn.emulator_runs"
        ) == 0  # fmt: skip
        for table in ("experiments", "experiment_parameters", "parameter_audit", "goals", "cycles"):
            count = f"SELECT count(*) FROM selflearn.{table}"
            assert await api.service.runtime.pool.fetchval(count) == 0, table
