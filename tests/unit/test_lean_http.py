"""The harness's lean HTTP client against a real socket server: keep-alive, JSON both ways,
a server that closes, and replies it cannot read end in LeanHTTPError, never a hang. And the
httpx comparison sample spread through the chat sequence."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from bench.chat import Outcome
from bench.lean_http import LeanClient, LeanHTTPError
from bench.pipeline import Chatter, interleaved

Reply = Callable[[bytes, bytes], bytes]  # (request head, body) -> raw reply


def json_reply(head: bytes, body: bytes, extra: str = "") -> bytes:
    path = head.split(b" ")[1].decode()
    auth = next((h for h in head.split(b"\r\n") if h.lower().startswith(b"authorization")), b"")
    out = json.dumps({"path": path, "got": json.loads(body), "auth": auth.decode()}).encode()
    return (
        f"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(out)}\r\n\r\n"
    ).encode() + out


async def serve(reply: Reply, seen: list[int]) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(1)  # one entry per connection
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    int(h.split(b":")[1])
                    for h in head.split(b"\r\n")
                    if h.lower().startswith(b"content-length")
                )
                writer.write(reply(head, await reader.readexactly(length)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def test_json_round_trips_on_one_kept_alive_connection() -> None:
    connections: list[int] = []
    server, url = await serve(json_reply, connections)
    http = LeanClient(url, {"Authorization": "Bearer k1"})
    try:
        for i in range(3):
            status, body = await http.post(f"/v1/x{i}", {"message": "héllo", "n": i})
            assert status == 201
            assert body == {"path": f"/v1/x{i}", "got": {"message": "héllo", "n": i},
                            "auth": "Authorization: Bearer k1"}  # fmt: skip
        assert connections == [1]
    finally:
        await http.aclose()
        server.close()


async def test_connection_close_opens_a_new_connection() -> None:
    connections: list[int] = []
    server, url = await serve(lambda h, b: json_reply(h, b, "connection: close\r\n"), connections)
    http = LeanClient(url, {})
    try:
        assert (await http.post("/a", {}))[0] == 201
        assert (await http.post("/b", {}))[0] == 201
        assert connections == [1, 1]
    finally:
        await http.aclose()
        server.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{}",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{}",  # then the server closes
    ],
)
async def test_a_reply_it_cannot_read_is_an_error(raw: bytes) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = LeanClient(f"http://127.0.0.1:{port}", {}, timeout_s=5)
    try:
        with pytest.raises(LeanHTTPError):
            await http.post("/x", {"a": 1})
    finally:
        await http.aclose()
        server.close()


async def test_no_server_is_an_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(LeanHTTPError):
        await LeanClient(f"http://127.0.0.1:{port}", {}).post("/x", {})


def test_only_plain_http_urls() -> None:
    with pytest.raises(ValueError, match="plain http"):
        LeanClient("https://example.org", {})


class Counting(Chatter):
    async def send(self, message: str) -> None:
        self.out.append(Outcome(None, None, float(message)))


@pytest.mark.parametrize(("main_n", "other_n"), [(200, 50), (20, 5), (7, 0), (3, 3)])
async def test_the_httpx_sample_is_spread_through_the_sequence(main_n: int, other_n: int) -> None:
    main, other = (
        Counting(LeanClient("http://127.0.0.1:1", {})),
        Counting(LeanClient("http://x", {})),
    )
    messages = [str(i) for i in range(main_n + other_n)]
    await interleaved(main, other, messages, other_n)
    assert (len(main.out), len(other.out)) == (main_n, other_n)
    got = sorted([*(o.latency_ms for o in main.out), *(o.latency_ms for o in other.out)])
    assert got == [float(i) for i in range(main_n + other_n)]  # each message once
    if other_n and main_n > other_n:  # never two from httpx in a row
        picked = [o.latency_ms for o in other.out]
        assert all(b - a > 1 for a, b in zip(picked, picked[1:], strict=False))
