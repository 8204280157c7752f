"""`maas emulate`: start a User Emulator run on a running MaaS, show its progress, print the
summary. Registered through the entry point group maas.commands (maas never imports this).

The emulator itself runs inside the MaaS process (POST /v1/selflearn/emulator/runs) and talks to
that MaaS over HTTP; this command only starts it, follows it and stops it on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from maas.credentials import credentials_path
from maas.settings import Settings

SUMMARY_KEYS = ("dialogs", "turns", "runs", "failures", "planted_fact_recall")


def register(sub: Any) -> None:
    """Add the `emulate` subcommand to maas's argparse subparsers."""
    emulate = sub.add_parser(
        "emulate", help="User Emulator: synthetic dialogs through the HTTP API (self-learning)"
    )
    emulate.add_argument("--dialogs", type=int, default=100, help="threads (whole episodes of 3)")
    emulate.add_argument("--concurrency", type=int, default=8, help="synthetic users at once")
    emulate.add_argument("--seed", type=int, default=1)
    emulate.add_argument("--url", default=None, help="MaaS URL (default http://HOST:PORT)")
    emulate.add_argument("--json", type=Path, default=None, help="write the summary here")
    emulate.add_argument(
        "--paraphrase", action="store_true", help="rewrite turns with the service's LLM"
    )
    emulate.add_argument("--data-dir", type=Path, help="where credentials.json is (admin key)")
    emulate.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    emulate.set_defaults(func=run)


def admin_key(settings: Settings) -> str | None:
    """MAAS_ADMIN_KEY, else the key `maas serve` wrote to the data directory."""
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    try:
        key: str = json.loads(credentials_path(settings.data_dir).read_text())["admin_key"]
    except (FileNotFoundError, KeyError, json.JSONDecodeError):
        return None
    return key


def bar(view: dict[str, Any], width: int = 30) -> str:
    done = int(width * view["progress"])
    return (
        f"[{'#' * done}{'.' * (width - done)}] {view['dialogs']}/{view['dialogs_planned']} dialogs"
        f"  {view['turns']} turns  {view['failures']} failures  {view['status']}"
    )


def follow(http: httpx.Client, run_id: str, poll: float) -> dict[str, Any]:
    """Poll until the run ends, drawing the bar on stderr; Ctrl-C asks the run to stop."""
    path = f"/v1/selflearn/emulator/runs/{run_id}"
    while True:
        try:
            view: dict[str, Any] = _ok(http.get(path))
            print(f"\r{bar(view)}", end="", file=sys.stderr, flush=True)
            if view["status"] != "running":
                print(file=sys.stderr)
                return view
            time.sleep(poll)
        except KeyboardInterrupt:
            print("\nstopping…", file=sys.stderr)
            _ok(http.post(f"{path}/stop"))


def _ok(resp: httpx.Response) -> Any:
    if resp.status_code >= 300:
        raise SystemExit(f"maas emulate: HTTP {resp.status_code}: {resp.text[:300]}")
    return resp.json()


def run(args: argparse.Namespace) -> int:
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    key = admin_key(settings)
    if not key:
        hint = "set MAAS_ADMIN_KEY or pass --data-dir of `maas serve`"
        print(f"maas emulate: no admin key: {hint}", file=sys.stderr)
        return 2
    url = args.url or f"http://{settings.host}:{settings.port}"
    body = {"dialogs": args.dialogs, "concurrency": args.concurrency, "seed": args.seed}
    body["paraphrase"] = args.paraphrase
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as h:
        started = _ok(h.post("/v1/selflearn/emulator/runs", json=body))
        print(f"emulator run {started['id']} on {url}", file=sys.stderr)
        view = follow(h, started["id"], args.poll)
    found = view["summary"] or {}
    headline = {k: found.get(k) for k in SUMMARY_KEYS}  # jsonb does not keep the key order
    result = {"emulator_run_id": view["id"], "status": view["status"], **headline, **found}
    if view["error"]:
        result["error"] = view["error"]
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if view["status"] == "completed" else 1
