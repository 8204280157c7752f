"""The web UI's routes (the `web` extension): every one is in the table below, none answers
without a valid key, user B gets nothing of user A's, the admin key reads runs and writes nothing,
forms refuse another origin, every page sends a strict CSP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from maas.app import create_app
from tests.conftest import ADMIN_KEY, Api
from tests.conftest import test_settings as settings_for
from tests.helpers import close_and_archive
from tests.security.conftest import walk
from web.extension import extend

PUBLIC = {("GET", "/"), ("GET", "/ui/login"), ("POST", "/ui/login"), ("POST", "/ui/logout")}
# Every other web route: it needs a key; "user" ones refuse the (read-only) admin key, "admin"
# ones refuse user keys.
NEEDS: dict[tuple[str, str], str] = {
    ("GET", "/ui/chat"): "user",  # the admin is sent on to /ui/runs
    ("POST", "/ui/threads"): "user",
    ("GET", "/ui/chat/{thread_id}/archive"): "user",
    ("GET", "/ui/runs"): "any",
    ("GET", "/ui/runs/{run_id}"): "any",
    ("GET", "/ui/memories"): "user",
    ("POST", "/ui/memories/{memory_id}/delete"): "user",
    ("GET", "/ui/tests"): "any",
    # the self-learning dashboard steers the service: the admin key only (a user key: 403)
    ("GET", "/ui/dashboard"): "admin",
    ("GET", "/ui/dashboard/cycles/{cycle_id}"): "admin",
    ("GET", "/ui/dashboard/parameters"): "admin",
}
SECRETS = ("4817", "ZEBRAFISH")


def routes(app: Any) -> set[tuple[str, str]]:
    return {(m, path) for path, r in walk(app.routes) for m in r.methods - {"HEAD"}}


def test_every_web_route_is_in_the_table(tmp_path: Path) -> None:
    settings = settings_for("postgresql://unused", tmp_path)
    web = routes(create_app(settings, extensions=[extend])) - routes(create_app(settings))
    assert web == PUBLIC | set(NEEDS)


@asynccontextmanager
async def web_api(db_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    app = create_app(settings_for(db_url, tmp_path), extensions=[extend])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://maas", timeout=30) as c:
            yield Api(app, c)


async def objects_of(client: httpx.AsyncClient) -> dict[str, str]:
    told = await client.post("/v1/chat", json={"message": "My locker code is 4817, ZEBRAFISH."})
    body = told.json()
    memories = await close_and_archive(client, body["thread_id"])
    return {
        "run_id": body["run_id"],
        "thread_id": body["thread_id"],
        "memory_id": str(memories[0]["id"]),
        "cycle_id": str(uuid.uuid4()),
    }


async def cookie(api: Api, who: httpx.AsyncClient | str) -> dict[str, str]:
    """The browser's way: log in with the key, then send the session cookie (and, as a browser
    does on its own pages, the Origin), not the key."""
    key = who if isinstance(who, str) else who.headers["Authorization"].split()[1]
    resp = await api.client.post("/ui/login", data={"api_key": key, "next": "/ui/chat"})
    assert resp.status_code == 303, resp.text
    token = resp.cookies["maas_session"]
    api.client.cookies.clear()  # each request below says who it is itself
    return {"Cookie": f"maas_session={token}", "Origin": "http://maas"}


async def test_no_or_bad_key_is_sent_to_the_login_form(db_url: str, tmp_path: Path) -> None:
    async with web_api(db_url, tmp_path) as api:
        ids = {"run_id": str(uuid.uuid4()), "thread_id": str(uuid.uuid4()), "memory_id": "1",
               "cycle_id": str(uuid.uuid4())}  # fmt: skip
        ours = {"Origin": "http://maas"}  # a browser on our own pages, with a stale cookie
        stale = ({"Cookie": "maas_session=nope", **ours}, {"Cookie": "maas_key=maas_wrong"})
        for headers in ({}, *stale, {"Authorization": "Bearer x"}):
            for method, path in NEEDS:
                resp = await api.client.request(method, path.format(**ids), headers=headers)
                assert resp.status_code == 303, (method, path, headers, resp.text)
                assert resp.headers["location"].startswith("/ui/login?next=/ui/")


async def test_user_b_gets_nothing_of_user_a_and_the_admin_only_reads(
    db_url: str, tmp_path: Path
) -> None:
    async with web_api(db_url, tmp_path) as api:
        alice, bob = await api.user("alice"), await api.user("bob")
        ids = await objects_of(alice)
        bob_session = await cookie(api, bob)
        for method, path in NEEDS:
            resp = await api.client.request(method, path.format(**ids), headers=bob_session)
            if NEEDS[(method, path)] == "admin":
                assert resp.status_code == 403, (method, path, resp.text)
            elif "{" in path:
                assert resp.status_code == 404, (method, path, resp.text)
            assert resp.status_code < 500 and not any(s in resp.text for s in SECRETS), path
        page = await api.client.get(f"/ui/chat?thread={ids['thread_id']}", headers=bob_session)
        assert page.status_code == 404 and "4817" not in page.text

        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        run = await api.client.get(f"/ui/runs/{ids['run_id']}", headers=admin)
        assert run.status_code == 200 and "4817" in run.text and "alice" in run.text
        for method, path in (k for k, v in NEEDS.items() if v == "user"):
            resp = await api.client.request(method, path.format(**ids), headers=admin)
            assert resp.status_code in (303, 403), (method, path, resp.text)
            assert resp.status_code == 403 or resp.headers["location"] == "/ui/runs"
        memories = (await alice.get("/v1/memories")).json()["memories"]
        assert str(memories[0]["id"]) == ids["memory_id"]  # nobody deleted it


async def test_forms_refuse_another_origin_and_login_never_redirects_away(
    db_url: str, tmp_path: Path
) -> None:
    async with web_api(db_url, tmp_path) as api:
        alice = await api.user("alice")
        ids = await objects_of(alice)
        alice_session = await cookie(api, alice)
        evil = {**alice_session, "Origin": "http://evil.example"}
        delete = f"/ui/memories/{ids['memory_id']}/delete"
        assert (await api.client.post(delete, headers=evil)).status_code == 403
        assert (await api.client.post("/ui/threads", headers=evil)).status_code == 403
        assert len((await alice.get("/v1/memories")).json()["memories"]) == 1
        key = alice.headers["Authorization"].split()[1]
        for target in ("//evil.example/x", "https://evil.example/", "/ui/\\evil", "/v1/users/me"):
            resp = await api.client.post(
                "/ui/login",
                data={"api_key": key, "next": target},
                headers={"Origin": "http://maas"},
            )
            assert resp.status_code == 303 and resp.headers["location"] == "/ui/chat", target
            set_cookie = resp.headers["set-cookie"].lower()
            assert "httponly" in set_cookie and "samesite=strict" in set_cookie
        own = alice_session
        resp = await api.client.post(delete, headers=own, data={"back": "q=locker"})
        where = f"/ui/memories?q=locker&deleted={ids['memory_id']}"  # back, saying it is done
        assert resp.status_code == 303 and resp.headers["location"] == where
        assert (await alice.get("/v1/memories")).json()["memories"] == []


async def test_every_page_sends_a_strict_csp(db_url: str, tmp_path: Path) -> None:
    async with web_api(db_url, tmp_path) as api:
        alice = await api.user("alice")
        ids = await objects_of(alice)
        pages = [
            "/ui/login",
            "/ui/chat",
            f"/ui/chat?thread={ids['thread_id']}",
            "/ui/runs",
            f"/ui/runs/{ids['run_id']}",
            "/ui/memories",
            "/ui/tests",
            f"/ui/runs/{uuid.uuid4()}",
        ]
        admin = await cookie(api, ADMIN_KEY)
        alice_session = await cookie(api, alice)
        dashboard = [
            "/ui/dashboard",
            "/ui/dashboard/parameters",
            f"/ui/dashboard/cycles/{uuid.uuid4()}",
        ]
        for path, who in [*((p, alice_session) for p in pages), *((p, admin) for p in dashboard)]:
            resp = await api.client.get(path, headers=who)
            csp = resp.headers["content-security-policy"]
            assert resp.headers["content-type"].startswith("text/html"), path
            assert "default-src 'self'" in csp and "script-src 'self'" in csp, path
            assert "unsafe" not in csp and "<script>" not in resp.text, path


async def test_a_malformed_page_address_gets_a_page_and_the_api_keeps_json(
    db_url: str, tmp_path: Path
) -> None:
    async with web_api(db_url, tmp_path) as api:
        alice = await api.user("alice")
        alice_session = await cookie(api, alice)
        for path in ("/ui/runs/not-a-uuid", "/ui/chat?thread=nope", "/ui/memories?page=0"):
            resp = await api.client.get(path, headers=alice_session)
            assert resp.status_code == 400 and resp.headers["content-type"].startswith("text/html")
        resp = await alice.get("/v1/runs/not-a-uuid")
        assert resp.status_code == 422 and resp.json()["error"]["code"] == "invalid_request"
