"""A minimal HTTP/1.1 keep-alive JSON client: the harness's load generator and stopwatch.

The harness measures the service, but its client runs on the same cores. httpx spent ~2.2 ms of
CPU per chat request here (its pure-Python HTTP machinery) and added ~2–4 ms to every measured
latency; this client does one write and a few reads per request (~0.45 ms). It speaks only what
the harness needs from `maas serve`: JSON in, a JSON body with a Content-Length out, one request
at a time per connection. The harness still reports chats sent with httpx in the same sequence,
so the difference stays visible.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

import orjson


class LeanHTTPError(Exception):
    """The connection broke or the reply was not what `maas serve` sends."""


class LeanClient:
    def __init__(self, base_url: str, headers: dict[str, str], timeout_s: float = 120.0) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"plain http://host:port only, got {base_url!r}")
        self.host, self.port = url.hostname, url.port or 80
        self.timeout_s = timeout_s
        lines = [f"Host: {url.netloc}", "Content-Type: application/json"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._head = "\r\n".join(lines) + "\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: dict[str, Any]) -> tuple[int, Any]:
        """(status, decoded JSON body). A broken connection is closed and raises LeanHTTPError;
        the next request opens a new one."""
        body = orjson.dumps(payload)
        request = f"POST {path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n"
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(request.encode() + body)
        except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.aclose()
            raise LeanHTTPError(f"{type(exc).__name__}: {exc}") from exc

    async def _exchange(self, request: bytes) -> tuple[int, Any]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(request)
        status_line = await self._reader.readline()
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP reply: {status_line[:80]!r}")
        length, close = await self._headers(self._reader)
        data = await self._reader.readexactly(length)
        if close:
            await self.aclose()
        return int(parts[1]), orjson.loads(data) if data else None

    @staticmethod
    async def _headers(reader: asyncio.StreamReader) -> tuple[int, bool]:
        length: int | None = None
        close = False
        while (line := await reader.readline()) not in (b"\r\n", b"\n"):
            if not line:
                raise EOFError("connection closed in the reply's headers")
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise ValueError("chunked replies are not supported")
            elif name == b"connection":
                close = value.strip().lower() == b"close"
        if length is None:
            raise ValueError("a reply without Content-Length")
        return length, close

    async def aclose(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
