"""What the HTTP-client commands share (`maas test-suite run`, and the self-learning commands
registered through maas.commands): the admin key, response checks, following a long job."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from maas.credentials import credentials_path
from maas.settings import Settings


def admin_key(settings: Settings) -> str | None:
    """MAAS_ADMIN_KEY, else the key `maas serve` wrote to the data directory."""
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    try:
        key: str = json.loads(credentials_path(settings.data_dir).read_text())["admin_key"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return None
    return key


def http_ok(command: str, resp: httpx.Response, code: int = 1) -> Any:
    """The JSON body of a 2xx response; anything else ends the command (exit `code`) with the
    service's own words on stderr."""
    if resp.status_code >= 300:
        print(f"{command}: HTTP {resp.status_code}: {resp.text[:500]}", file=sys.stderr)
        raise SystemExit(code)
    return resp.json()


def follow(
    http: httpx.Client,
    path: str,
    render: Callable[[dict[str, Any]], str],
    poll: float,
    ok: Callable[[httpx.Response], Any],
) -> dict[str, Any]:
    """Poll `path` until its status is no longer running, redrawing `render(view)` on stderr;
    Ctrl-C asks the job to stop (POST `path`/stop) and keeps following it to its end."""
    while True:
        try:
            view: dict[str, Any] = ok(http.get(path))
            print(f"\r{render(view)}", end="", file=sys.stderr, flush=True)
            if view["status"] != "running":
                print(file=sys.stderr)
                return view
            time.sleep(poll)
        except KeyboardInterrupt:
            print("\nstopping…", file=sys.stderr)
            ok(http.post(f"{path}/stop"))
