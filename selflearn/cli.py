"""`maas emulate`: start a User Emulator run on a running MaaS, show its progress, print the
summary. Registered through the entry point group maas.commands (maas never imports this).

The emulator itself runs inside the MaaS process (POST /v1/selflearn/emulator/runs) and talks to
that MaaS over HTTP; this command only starts it, follows it and stops it on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from maas import cli_support
from maas.cli_support import admin_key
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


def bar(view: dict[str, Any], width: int = 30) -> str:
    done = int(width * view["progress"])
    return (
        f"[{'#' * done}{'.' * (width - done)}] {view['dialogs']}/{view['dialogs_planned']} dialogs"
        f"  {view['turns']} turns  {view['failures']} failures  {view['status']}"
    )


def follow(http: httpx.Client, run_id: str, poll: float) -> dict[str, Any]:
    """Poll until the run ends, drawing the bar on stderr; Ctrl-C asks the run to stop."""
    return cli_support.follow(http, f"/v1/selflearn/emulator/runs/{run_id}", bar, poll, _ok)


def _ok(resp: httpx.Response) -> Any:
    return cli_support.http_ok("maas emulate", resp)


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
