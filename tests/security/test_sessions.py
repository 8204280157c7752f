"""Who a request is: one parse for the rate limiter and authentication, server-side web sessions
instead of the key in a cookie, and a session cookie that acts only from our own pages."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from maas.api.limits import RateLimit
from maas.app import create_app
from tests.conftest import ADMIN_KEY, Api
from tests.conftest import test_settings as settings_for
from tests.helpers import close_and_archive
from web.extension import extend

OURS = "http://maas"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@asynccontextmanager
async def web_api(db_url: str, tmp_path: Path, **overrides: Any) -> AsyncIterator[Api]:
    app = create_app(settings_for(db_url, tmp_path, **overrides), extensions=[extend])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=OURS, timeout=30) as c:
            yield Api(app, c)


def key_of(client: httpx.AsyncClient) -> str:
    return client.headers["Authorization"].split()[1]


async def log_in(api: Api, key: str) -> tuple[str, str]:
    """The login form as a browser sends it: the (name, value) of the cookie it sets."""
    resp = await api.client.post("/ui/login", data={"api_key": key}, headers={"Origin": OURS})
    assert resp.status_code == 303, resp.text
    [(name, value)] = resp.cookies.items()
    api.client.cookies.clear()  # every request below names its cookie itself
    return name, value


async def as_cookie(api: Api, cookie: str, method: str, path: str, **headers: str) -> int:
    resp = await api.client.request(method, path, headers={"Cookie": cookie, **headers})
    return resp.status_code


async def test_a_doubled_cookie_cannot_escape_the_rate_limit(db_url: str, tmp_path: Path) -> None:
    """The limiter took the first cookie and authentication the last: `junk; real` was served
    as the real user and limited as junk, so 1,000 requests went through in 4 s. Now both read
    the same parse: at most the burst is served as alice, whichever order the cookies come in."""
    async with web_api(db_url, tmp_path, rate_limit_per_min=1, rate_limit_burst=3) as api:
        alice = await api.user("alice")
        name, real = await log_in(api, key_of(alice))
        served = 0
        for _ in range(10):
            junk = f"junk{secrets.token_hex(4)}"
            for cookie in (f"{name}={junk}; {name}={real}", f"{name}={real}; {name}={junk}"):
                status = await as_cookie(api, cookie, "GET", "/v1/users/me")
                assert status in (200, 401, 429)
                served += status == 200
        assert served == 3


async def test_logging_in_again_buys_no_fresh_allowance(db_url: str, tmp_path: Path) -> None:
    """Each session had a bucket of its own: five logins, five times the key's rate (an outside
    tester's 300 requests in 1.1 s against 60 a minute). Now a session draws on the bucket of the
    key that opened it, the key's own requests included."""
    async with web_api(db_url, tmp_path, rate_limit_per_min=1, rate_limit_burst=3) as api:
        alice = await api.user("alice")
        cookies = ["=".join(await log_in(api, key_of(alice))) for _ in range(4)]
        served = [await as_cookie(api, c, "GET", "/v1/users/me") for c in cookies]
        served.append((await alice.get("/v1/users/me")).status_code)
        assert served == [200, 200, 200, 429, 429]


async def test_login_attempts_are_limited_per_address(db_url: str, tmp_path: Path) -> None:
    """A login presents no key to the API's rate limit, so attempts were unlimited (each one a
    key lookup). Now an address gets `login_attempts_per_min`, right key or wrong, and then a
    429 login page that says when to try again, before any lookup."""
    async with web_api(db_url, tmp_path, login_attempts_per_min=3) as api:
        alice = await api.user("alice")
        guesses = [f"maas_{secrets.token_hex(16)}" for _ in range(3)]
        tried = [
            await api.client.post("/ui/login", data={"api_key": g}, headers={"Origin": OURS})
            for g in guesses
        ]
        assert [r.status_code for r in tried] == [401, 401, 401]
        right = await api.client.post(
            "/ui/login", data={"api_key": key_of(alice)}, headers={"Origin": OURS}
        )
        assert right.status_code == 429 and int(right.headers["Retry-After"]) >= 1
        assert "Too many login attempts" in right.text and not right.cookies
        assert (await alice.get("/v1/users/me")).status_code == 200  # the API's own limit


async def test_random_tokens_cannot_grow_the_limiters_memory() -> None:
    """Every new token got a bucket that was never evicted; now the least recently used go."""

    async def ok(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    limiter = RateLimit(ok, per_min=60, burst=2, max_buckets=100)
    sent: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent.append(message["status"])

    async def call(token: str) -> None:
        headers = [(b"authorization", f"Bearer {token}".encode())]
        await limiter({"type": "http", "headers": headers}, None, send)  # type: ignore[arg-type]

    for _ in range(3):
        await call("maas_real")
    for _ in range(5_000):
        await call(secrets.token_urlsafe(16))
        assert len(limiter.buckets.buckets) <= 100
    assert sent[:3] == [200, 200, 429]  # the real key was limited while its bucket lived


async def test_the_cookie_is_a_session_that_logout_revocation_and_erasure_end(
    db_url: str, tmp_path: Path
) -> None:
    async with web_api(db_url, tmp_path) as api:
        pool = api.service.runtime.pool
        alice = await api.user("alice")
        name, token = await log_in(api, key_of(alice))
        assert key_of(alice) not in token and name == "maas_session"
        session = f"{name}={token}"
        assert await as_cookie(api, session, "GET", "/v1/users/me") == 200
        assert await as_cookie(api, session, "GET", "/ui/memories") == 200
        stored = await pool.fetchval("SELECT token_hash FROM maas.sessions")
        assert token not in stored and key_of(alice) not in stored  # only the token's sha256

        # logout ends it server-side: a copy of the cookie is worthless afterwards
        assert await as_cookie(api, session, "POST", "/ui/logout", Origin=OURS) == 303
        assert await as_cookie(api, session, "GET", "/v1/users/me") == 401
        assert await as_cookie(api, session, "GET", "/ui/memories") == 303

        # revoking the key ends its sessions; so does expiry
        name, token = await log_in(api, key_of(alice))
        user_id = (await alice.get("/v1/users/me")).json()["user_id"]
        revoked = await api.client.post(f"/v1/admin/users/{user_id}/revoke", headers=ADMIN)
        assert revoked.status_code == 200
        assert await as_cookie(api, f"{name}={token}", "GET", "/v1/test-runs") == 401
        assert await pool.fetchval("SELECT count(*) FROM maas.sessions") == 0

        bob = await api.user("bob")
        name, token = await log_in(api, key_of(bob))
        await pool.execute("UPDATE maas.sessions SET expires_at = now() - interval '1 second'")
        assert await as_cookie(api, f"{name}={token}", "GET", "/v1/users/me") == 401

        # erasure cascades; the admin's session is a session too (read-only pages)
        name, token = await log_in(api, key_of(bob))
        assert (await bob.delete("/v1/users/me")).status_code == 200
        assert (
            await pool.fetchval("SELECT count(*) FROM maas.sessions WHERE user_id IS NOT NULL") == 0
        )
        name, token = await log_in(api, ADMIN_KEY)
        assert await as_cookie(api, f"{name}={token}", "GET", "/ui/runs") == 200
        assert await as_cookie(api, f"{name}={token}", "GET", "/v1/test-runs") == 200


async def test_a_session_cookie_changes_nothing_from_another_site(
    db_url: str, tmp_path: Path
) -> None:
    """Same-site CSRF: a bodiless POST or DELETE from another page carried the cookie and was
    served. A cookie-authenticated request that changes something needs Sec-Fetch-Site:
    same-origin or an Origin equal to the Host; reads and API keys need neither."""
    async with web_api(db_url, tmp_path) as api:
        alice = await api.user("alice")
        thread = (await alice.post("/v1/threads", json={"title": "t"})).json()["thread_id"]
        name, token = await log_in(api, key_of(alice))
        session = f"{name}={token}"
        close = f"/v1/threads/{thread}/close"
        for refused in (
            {},
            {"Origin": "http://evil.example"},
            {"Origin": "http://maas.evil.example"},
            {"Sec-Fetch-Site": "same-site"},
            {"Sec-Fetch-Site": "cross-site", "Origin": OURS},
        ):
            assert await as_cookie(api, session, "POST", close, **refused) == 403, refused
            assert await as_cookie(api, session, "DELETE", "/v1/users/me", **refused) == 403
        assert await as_cookie(api, session, "GET", "/v1/users/me") == 200  # a read
        assert (await alice.get(f"/v1/threads/{thread}")).json()["closed_at"] is None
        assert await as_cookie(api, session, "POST", close, Origin=OURS) == 200
        assert (
            await as_cookie(api, session, "POST", close, **{"Sec-Fetch-Site": "same-origin"}) == 200
        )
        assert (await alice.post(close)).status_code == 200  # the key in the header: no cookie


async def test_hostile_forms_are_4xx_and_nothing_half_done(db_url: str, tmp_path: Path) -> None:
    """More than 20 form fields answered 500 (even unauthenticated, on the login form); a memory
    delete whose `back` had more than 5 parts answered 500 after deleting."""
    async with web_api(db_url, tmp_path) as api:
        many = "&".join(f"f{i}=x" for i in range(25))
        resp = await api.client.post(
            "/ui/login", content=many, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert resp.status_code == 400 and "at most 20 fields" in resp.text

        alice = await api.user("alice")
        told = await alice.post("/v1/chat", json={"message": "My locker code is 4817 at the gym."})
        [memory] = await close_and_archive(alice, told.json()["thread_id"])
        name, token = await log_in(api, key_of(alice))
        back = "q=locker&page=2&a=1&b=2&c=3&d=4&e=5"
        resp = await api.client.post(
            f"/ui/memories/{memory['id']}/delete",
            data={"back": back},
            headers={"Cookie": f"{name}={token}", "Origin": OURS},
        )
        where = f"/ui/memories?deleted={memory['id']}"  # not the hostile back: the first page
        assert resp.status_code == 303 and resp.headers["location"] == where
        assert (await alice.get("/v1/memories")).json()["memories"] == []
