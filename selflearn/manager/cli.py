"""`maas cycle run micro|macro|deep [--goal ID]`: start a learning cycle on a running MaaS,
follow its progress, print its report. Registered through the entry point group maas.commands
(maas never imports this). The cycle runs inside the MaaS process (POST /v1/selflearn/cycles);
Ctrl-C asks it to stop.

Exit status: 0 the cycle finished (whatever its outcome), 1 it failed, stopped or was aborted,
2 no admin key or MaaS refused to start it.
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
from maas.params import defaults
from maas.settings import Settings
from selflearn.cli import read_corpus, upload
from selflearn.emulator.corpus import CorpusError

BASE = "/v1/selflearn/cycles"


def register(sub: Any) -> None:
    """Add `cycle run` to maas's argparse subparsers."""
    cycle = sub.add_parser("cycle", help="Manager learning cycles (self-learning)")
    inner = cycle.add_subparsers(dest="cycle_command", required=True)
    run_p = inner.add_parser("run", help="run a micro, macro or deep cycle and print its report")
    run_p.add_argument("kind", choices=("micro", "macro", "deep"))
    run_p.add_argument("--goal", type=int, default=None, help="goal id (macro and deep need one)")
    run_p.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="macro: the variant to test (repeatable); default: the next step toward the goal",
    )  # fmt: skip
    run_p.add_argument("--dialogs", type=int, default=None, help="dialogs per arm / batch")
    run_p.add_argument("--seed", type=int, default=None)
    run_p.add_argument("--trials", type=int, default=None, help="deep: Optuna trials")
    run_p.add_argument("--trial-dialogs", type=int, default=None, help="deep: dialogs per arm")
    run_p.add_argument("--confirm-dialogs", type=int, default=None, help="deep: confirmation")
    run_p.add_argument(
        "--corpus", type=Path, default=None,
        help="replay cycles: conversations (LoCoMo format) fed beside the generated world",
    )  # fmt: skip
    run_p.add_argument("--world-users", type=int, default=None, help="0: the corpus only")
    run_p.add_argument("--reingest", action="store_true", help="archivist.* levers may move")
    run_p.add_argument("--url", default=None, help="MaaS URL (default http://HOST:PORT)")
    run_p.add_argument("--report", type=Path, default=None, help="write the Markdown report here")
    run_p.add_argument(
        "--json", type=Path, default=None,
        help="write the outcome here: the shipped version (or none) with its parameters",
    )  # fmt: skip
    run_p.add_argument(
        "--shipped-params", type=Path, default=None,
        help="write the shipped version's changes from the defaults (maas bench locomo --params)",
    )  # fmt: skip
    run_p.add_argument("--data-dir", type=Path, help="where credentials.json is (admin key)")
    run_p.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    run_p.set_defaults(func=run)


def variant(pairs: list[str]) -> dict[str, Any] | None:
    """NAME=VALUE pairs; values parsed as JSON (numbers, true/false), else kept as text."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"maas cycle: --set wants NAME=VALUE, not {pair!r}")
        try:
            out[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[name.strip()] = raw
    return out or None


def body_of(args: argparse.Namespace, corpus: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": args.kind, "goal_id": args.goal, "who": "cli"}
    extra = {"variant": variant(args.set), "dialogs": args.dialogs, "seed": args.seed,
             "trials": args.trials, "trial_dialogs": args.trial_dialogs,
             "confirm_dialogs": args.confirm_dialogs, "corpus": corpus,
             "world_users": args.world_users,
             "reingest": True if args.reingest else None}  # fmt: skip
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def write_shipped(http: httpx.Client, view: dict[str, Any], path: Path) -> None:
    """The shipped version as overrides of the defaults (the keys of MAAS_PARAMS), for
    `maas bench locomo --params`; nothing shipped: nothing written."""
    facts = http.get(f"/v1/selflearn/reports/{view['id']}", params={"format": "json"})
    shipped = (facts.json() if facts.status_code == 200 else {}).get("shipped")
    if not shipped:
        print("maas cycle: nothing shipped, no --shipped-params written", file=sys.stderr)
        return
    built = defaults().values
    changed = {k: v for k, v in shipped["params"].items() if built.get(k) != v}
    path.write_text(json.dumps(changed, indent=2, sort_keys=True) + "\n")


def outcome_json(view: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    """What `--json` writes: the cycle, its outcome, the version it shipped (or none) with its
    full parameters and its change from the parameters before, the search and confirmation."""
    result = view.get("result") or {}
    shipped = facts.get("shipped")
    return {
        "cycle": view["id"], "kind": view["kind"], "status": view["status"],
        "outcome": view["outcome"], "error": view.get("error"),
        "shipped": shipped, "proposal": result.get("proposal"),
        "verdict": result.get("verdict"), "reasons": result.get("reasons"),
        "search": facts.get("search"), "confirmation": facts.get("confirmation"),
    }  # fmt: skip


def _ok(resp: httpx.Response) -> Any:
    return cli_support.http_ok("maas cycle", resp, code=2)


def bar(view: dict[str, Any], width: int = 30) -> str:
    done = int(width * float(view["progress"]))
    return f"[{'#' * done}{'.' * (width - done)}] {view['progress']:.0%}  {view['phase']:<32}"


def follow(http: httpx.Client, cycle_id: str, poll: float) -> dict[str, Any]:
    """Poll until the cycle ends, drawing a bar on stderr; Ctrl-C asks it to stop."""
    return cli_support.follow(http, f"{BASE}/{cycle_id}", bar, poll, _ok)


def run(args: argparse.Namespace) -> int:
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    key = admin_key(settings)
    if not key:
        print("maas cycle: no admin key: set MAAS_ADMIN_KEY or pass --data-dir", file=sys.stderr)
        return 2
    url = args.url or f"http://{settings.host}:{settings.port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        files = read_corpus(args.corpus)
    except CorpusError as exc:
        print(f"maas cycle: {exc}", file=sys.stderr)
        return 2
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        hashes = upload(http, files) if files else None
        started = _ok(http.post(BASE, json=body_of(args, hashes)))
        print(f"{args.kind} cycle {started['id']} on {url}", file=sys.stderr)
        view = follow(http, started["id"], args.poll)
        report = http.get(f"/v1/selflearn/reports/{view['id']}")
        if args.json:
            facts = http.get(f"/v1/selflearn/reports/{view['id']}", params={"format": "json"})
            found = facts.json() if facts.status_code == 200 else {}
            args.json.write_text(json.dumps(outcome_json(view, found), indent=2, default=str))
        if args.shipped_params:
            write_shipped(http, view, args.shipped_params)
    text = report.text if report.status_code == 200 else ""
    print(text or json.dumps(view, indent=2, default=str), end="" if text else "\n")
    if args.report and text:
        args.report.write_text(text)
    print(f"cycle {view['status']}: {view['outcome'] or view['error']}", file=sys.stderr)
    return 0 if view["status"] == "done" else 1
