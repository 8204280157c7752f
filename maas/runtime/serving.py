"""uvicorn with a graceful drain (SIGTERM stops claiming at once, in-flight work gets one grace)
and guarded connections: idle sockets cannot exhaust the process's file descriptors."""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import resource
import socket
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from maas.llm.tokens import encoding
from maas.settings import Settings


class DrainingServer(uvicorn.Server):
    """On SIGTERM/SIGINT the workers stop claiming immediately, so in-flight runs finish or
    release their lease within one grace period, counted from the signal (not after uvicorn's
    own wait for open connections)."""

    def __init__(self, config: uvicorn.Config, service: Any) -> None:
        super().__init__(config)
        self.service = service

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.service.begin_drain()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        settle_heap(self.service.settings.token_encoding)


def settle_heap(token_encoding: str) -> None:
    """Once the service is up (the token encoding loaded, Service.start), move everything alive
    to the garbage collector's permanent generation. A full collection walked every object of
    the ~200 MB process (imports, FastAPI's models, the encoding's ranks): 90–125 ms, latency
    spikes in requests at 10k memories. Frozen, the same collections take ~0.5 ms
    (docs/performance.md, session 6). No collection first: it took 0.15 s of the cold start
    and found 10 unreachable objects, which stay frozen."""
    encoding(token_encoding)  # loaded already when the service started: a cache hit
    gc.freeze()


log = logging.getLogger(__name__)
FD_RESERVE = 128  # descriptors kept for the database pools, the listener, files and logs


def _idle(conn: Any) -> bool:
    """No request in flight: headers not complete yet, or the last response sent."""
    return conn.cycle is None or bool(conn.cycle.response_complete)


def guarded(base: type[asyncio.Protocol], header_timeout_s: float, cap: int) -> type[Any]:
    """uvicorn's HTTP protocol with a header deadline and a connection cap.

    uvicorn closes a keep-alive connection idle after a response, but a connection that never
    completes its request's headers (silent, or one byte at a time) it keeps forever: ~20,000 of
    them exhausted the descriptors and /health stopped answering. Here a connection must complete
    each request's headers within `header_timeout_s` of connecting or of its last response; and
    past `cap` open connections a new one closes the longest-idle one (none idle: the new one is
    refused), so a flood of idle sockets costs an attacker its own sockets, not the service."""

    class Guarded(base):  # type: ignore[valid-type,misc]
        _deadline: asyncio.TimerHandle | None = None
        idle_since = 0.0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()
            _make_room(self, cap)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self.idle_since = self.loop.time()
            self._deadline = self.loop.call_later(header_timeout_s, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if _idle(self) and not self.transport.is_closing():
                self.transport.close()

    return Guarded


def _make_room(new: Any, cap: int) -> None:
    if len(new.connections) <= cap:
        return
    live = [c for c in new.connections if not c.transport.is_closing()]
    if len(live) <= cap:
        return
    idle = [c for c in live if c is not new and _idle(c)]
    victim = min(idle, key=lambda c: c.idle_since) if idle else new
    victim.transport.close()


def connection_cap(wanted: int, reserve: int) -> int:
    """The cap that fits the descriptors: the soft limit raised to the hard one first (the
    default soft limit is often 1024), less what the process needs besides connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(min(wanted, soft - reserve), 1)


class PathOnly(logging.Filter):
    """The access log records paths without their query strings: a search's text
    (`/v1/memories?query=…`, `/ui/memories?q=…`) is the user's data and must not outlive an
    erasure in a log file. uvicorn's access record's arguments are (client, method, path with
    query, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


def serve(app: Any, settings: Settings) -> None:
    reserve = FD_RESERVE + settings.pool_max + settings.search_pool_max
    cap = connection_cap(settings.max_connections, reserve)
    if cap < settings.max_connections:
        log.warning(
            "MAAS_MAX_CONNECTIONS %d lowered to %d: the file descriptor limit",
            settings.max_connections,
            cap,
        )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=max(int(settings.shutdown_grace_s), 1),
        timeout_keep_alive=max(math.ceil(settings.keep_alive_s), 1),
        http=guarded(AutoHTTPProtocol, settings.header_timeout_s, cap),
    )
    logging.getLogger("uvicorn.access").addFilter(PathOnly())  # after Config set logging up
    DrainingServer(config, app.state.service).run()
