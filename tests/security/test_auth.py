"""11. No key, a wrong key or a revoked key: 401 on every route; a user key on admin routes: 403.
Keys are stored only as sha256 hashes."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from maas.app import create_app
from maas.credentials import bootstrap
from tests.conftest import ADMIN_KEY
from tests.conftest import test_settings as settings_for
from tests.security.conftest import BODIES, api_routes, is_admin

IDS = {
    "run_id": str(uuid.uuid4()),
    "thread_id": str(uuid.uuid4()),
    "memory_id": "1",
    "user_id": str(uuid.uuid4()),
    "model_id": "maas-offline",
}


def test_every_route_is_in_the_body_table(tmp_path: Path) -> None:
    app = create_app(settings_for("postgresql://unused", tmp_path))
    assert sorted(api_routes(app)) == sorted(BODIES)


async def test_no_wrong_or_revoked_key_is_401_everywhere_user_key_on_admin_is_403(
    make_api: Any,
) -> None:
    async with make_api() as api:
        alice = await api.user("alice")
        revoked = await api.user("revoked")
        me = (await revoked.get("/v1/users/me")).json()
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        resp = await api.client.post(f"/v1/admin/users/{me['user_id']}/revoke", headers=admin)
        assert resp.status_code == 200
        keys: dict[str, dict[str, str]] = {
            "none": {},
            "wrong": {"Authorization": "Bearer maas_not-a-real-key"},
            "malformed": {"Authorization": "Basic dXNlcjpwYXNz"},
            "revoked": {"Authorization": revoked.headers["Authorization"]},
        }
        routes = api_routes(api.app)
        for method, path in routes:
            url = path.format(**IDS)
            for label, headers in keys.items():
                resp = await api.client.request(
                    method, url, json=BODIES[(method, path)], headers=headers
                )
                assert resp.status_code == 401, (label, method, path, resp.text)
                assert resp.json()["error"]["code"] == "unauthorized"
            if is_admin(path):
                resp = await alice.request(method, url, json=BODIES[(method, path)])
                assert resp.status_code == 403, (method, path, resp.text)
        assert len(routes) == len(BODIES)


async def test_keys_are_stored_only_as_hashes(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user("alice")
        key = alice.headers["Authorization"].split()[1]
        rows = await api.service.runtime.pool.fetch("SELECT * FROM maas.users")
        dumped = repr([dict(r) for r in rows])
        assert key not in dumped and key[20:] not in dumped
        assert hashlib.sha256(key.encode()).hexdigest() in dumped


async def test_revoked_key_keeps_the_data_and_revoke_is_admin_only(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user("alice")
        body = (await alice.post("/v1/chat", json={"message": "I collect stamps."})).json()
        user_id = (await alice.get("/v1/users/me")).json()["user_id"]
        assert (await alice.post(f"/v1/admin/users/{user_id}/revoke")).status_code == 403
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        revoke = f"/v1/admin/users/{user_id}/revoke"
        assert (await api.client.post(revoke, headers=admin)).status_code == 200
        assert (await api.client.post(revoke, headers=admin)).status_code == 200  # repeatable
        assert (await alice.get(f"/v1/runs/{body['run_id']}")).status_code == 401
        unknown = f"/v1/admin/users/{uuid.uuid4()}/revoke"
        assert (await api.client.post(unknown, headers=admin)).status_code == 404
        pool = api.service.runtime.pool
        assert await pool.fetchval("SELECT count(*) FROM maas.pipeline_runs") == 1


async def test_a_rewritten_credentials_file_is_mode_0600(db_url: str, tmp_path: Path) -> None:
    """The file is rewritten when its demo key is not in the database (a new database); the
    rewrite kept whatever wider mode the old file had."""
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({"admin_key": "maas_admin_old", "demo_user_key": "maas_gone"}))
    path.chmod(0o644)
    conn = await asyncpg.connect(db_url)
    try:
        admin = await bootstrap(conn, tmp_path)
    finally:
        await conn.close()
    assert admin == "maas_admin_old"
    assert json.loads(path.read_text())["demo_user_key"] != "maas_gone"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["credentials.json"]  # no temporary file left
