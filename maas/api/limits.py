"""Two small ASGI middlewares: a request body limit (413, and 408 for a body that does not arrive
in time) and a per-key token bucket (429)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from maas.api.identity import header, presented
from maas.credentials import hash_key
from maas.db.queries import q
from maas.settings import Settings

TOO_LARGE = 413
TOO_SLOW = 408


async def send_error(
    send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Declared bodies over the limit are refused before reading; streamed ones while read. The
    whole body must arrive within `timeout_s` of the request's start: a request in flight keeps
    its connection (maas/runtime/serving.py closes idle ones only), so a body sent a byte at a
    time would hold it for ever."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_error(send, TOO_LARGE, "too_large", self._message())
            return
        await self.app(scope, self._counting(receive), send)

    def _message(self) -> str:
        return f"request body over the limit of {self.max_bytes} bytes"

    def _counting(self, receive: Receive) -> Receive:
        seen, complete = 0, False
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def counted() -> Message:
            nonlocal seen, complete
            if complete:  # later receives wait for the client to go (SSE): no deadline
                return await receive()
            message = await self._in_time(receive, deadline)
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # FastAPI lets an HTTPException through as it is
                raise HTTPException(TOO_LARGE, self._message())
            return message

        return counted

    async def _in_time(self, receive: Receive, deadline: float) -> Message:
        try:
            async with asyncio.timeout_at(deadline):
                return await receive()
        except TimeoutError:
            message = f"request body not received within {self.timeout_s:g} s"
            raise HTTPException(TOO_SLOW, message) from None


@dataclass
class Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """A token bucket per key, in this process's memory: `per_min` tokens a minute, up to
    `burst` saved. At most `size` buckets are kept, least recently used first out: a stream of
    random keys cannot grow memory, and a bucket evicted while idle would have refilled anyway."""

    def __init__(self, per_min: float, burst: int, size: int) -> None:
        self.rate = per_min / 60.0
        self.burst = float(max(burst, 1))
        self.size = max(size, 1)
        self.buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """Take one token; 0 when granted (or no limit), else the seconds until one is there."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        bucket = self._bucket(key, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _bucket(self, key: str, now: float) -> Bucket:
        bucket = self.buckets.get(key)
        if bucket is not None:
            self.buckets.move_to_end(key)
            return bucket
        while len(self.buckets) >= self.size:
            self.buckets.popitem(last=False)
        bucket = self.buckets[key] = Bucket(self.burst, now)
        return bucket


def retry_after(wait_s: float) -> str:
    return str(max(math.ceil(wait_s), 1))


class RateLimit:
    """A token bucket per presented credential (by its hash). The credential is the one
    authentication uses (maas.api.identity.presented). Several processes each allow the rate;
    put a shared limiter in front for a global one."""

    def __init__(self, app: ASGIApp, per_min: float, burst: int, max_buckets: int) -> None:
        self.app = app
        self.buckets = TokenBuckets(per_min, burst, max_buckets)
        self.sessions = SessionKeys(max_buckets)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = await self._key(scope) if scope["type"] == "http" else None
        wait = 0.0 if key is None else self.buckets.take(key)
        if wait > 0:
            message = f"rate limit of {self.buckets.rate * 60:g} requests a minute for this key"
            headers = {"Retry-After": retry_after(wait)}
            await send_error(send, 429, "rate_limited", message, headers)
            return
        await self.app(scope, receive, send)

    async def _key(self, scope: Scope) -> str | None:
        """The bucket: the presented key's hash; for a session cookie the hash of the key that
        opened it, so that logging in again does not buy a fresh allowance (a session that
        finds no key keeps its own bucket: it is refused with 401 anyway)."""
        credential = presented(scope)
        if credential is None:
            return None
        hashed = hash_key(credential.secret)
        if not credential.session:
            return hashed
        return await self.sessions.key_of(scope, hashed) or hashed


class SessionKeys:
    """The key hash behind a session token's hash, looked up once a minute at most (a session's
    key never changes; a closed session is refused by authentication, not here)."""

    TTL_S = 60.0

    def __init__(self, size: int) -> None:
        self.size = max(size, 1)
        self.known: OrderedDict[str, tuple[str | None, float]] = OrderedDict()

    async def key_of(self, scope: Scope, token_hash: str) -> str | None:
        now = time.monotonic()
        cached = self.known.get(token_hash)
        if cached is not None and now - cached[1] < self.TTL_S:
            return cached[0]
        api = getattr(getattr(scope.get("app"), "state", None), "api", None)
        if api is None:  # not started: nothing to look up
            return None
        found: str | None = await api.runtime.pool.fetchval(q("session_key_hash"), token_hash)
        self.known[token_hash] = (found, now)
        self.known.move_to_end(token_hash)
        while len(self.known) > self.size:
            self.known.popitem(last=False)
        return found


def install(app: Any, settings: Settings) -> None:
    """The limits of `settings`: body size and time, request rate."""
    from maas.api.headers import SecurityHeaders

    app.add_middleware(
        RateLimit,
        per_min=settings.rate_limit_per_min,
        burst=settings.rate_limit_burst,
        max_buckets=settings.rate_limit_buckets,
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(  # outermost: refuse before anything
        BodyLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s
    )
