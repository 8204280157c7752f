"""`maas experiment run FILE`: validate an experiment file, run it on a running MaaS (both arms
through the User Emulator, paired), wait for the verdict and print its table. Registered through
the entry point group maas.commands (maas never imports this).

Exit status: 0 a verdict was reached (whatever it is), 1 the experiment failed or stopped,
2 the file is invalid or MaaS refused it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from maas import cli_support
from maas.cli_support import admin_key
from maas.settings import Settings
from selflearn.teacher.spec import ROLE_ORDER, SpecError, load

BASE = "/v1/selflearn/experiments"


def register(sub: Any) -> None:
    """Add `experiment run` to maas's argparse subparsers."""
    experiment = sub.add_parser("experiment", help="Teacher experiments (self-learning)")
    inner = experiment.add_subparsers(dest="experiment_command", required=True)
    run_p = inner.add_parser("run", help="run experiments/<file>.yaml and print the verdict")
    run_p.add_argument("file", type=Path)
    run_p.add_argument("--url", default=None, help="MaaS URL (default http://HOST:PORT)")
    run_p.add_argument("--json", type=Path, default=None, help="write the verdict here")
    run_p.add_argument("--data-dir", type=Path, help="where credentials.json is (admin key)")
    run_p.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    run_p.set_defaults(func=run)


def _ok(resp: httpx.Response) -> Any:
    return cli_support.http_ok("maas experiment", resp)


def follow(http: httpx.Client, exp_id: str, poll: float) -> dict[str, Any]:
    """Wait for the experiment to end; Ctrl-C asks it to stop."""
    started = time.monotonic()

    def line(view: dict[str, Any]) -> str:
        arm = view.get("live_arm") or "-"
        return f"{view['status']}  live arm: {arm:<8}  {time.monotonic() - started:6.0f}s"

    return cli_support.follow(http, f"{BASE}/{exp_id}", line, poll, _ok)


def _num(value: Any, fmt: str = ".4g") -> str:
    return "n/a" if value is None else format(value, fmt)


def _ci(ci: Any) -> str:
    return "n/a" if not ci or ci[0] is None else f"[{ci[0]:+.4g}, {ci[1]:+.4g}]"


_COLUMNS = (("metric", 24, "<"), ("role", 10, "<"), ("baseline", 10, ">"), ("variant", 10, ">"),
            ("delta", 10, ">"), ("CI (1-α)", 24, ">"), ("p", 10, ">"), ("p Holm", 10, ">"),
            ("n", 5, ">"))  # fmt: skip


def _row(cells: list[str]) -> str:
    return " ".join(
        f"{c:{align}{width}}" for c, (_, width, align) in zip(cells, _COLUMNS, strict=True)
    )


def table(result: dict[str, Any]) -> str:
    head = _row([name for name, _, _ in _COLUMNS])
    lines = [f"experiment {result['name']}  spec {result['spec_hash'][:12]}  "
             f"verdict: {result['verdict']}", head, "-" * len(head)]  # fmt: skip
    for name, m in result["metrics"].items():
        lines.append(_row([
            name, m["role"], _num(m["baseline"]), _num(m["variant"]), _num(m["delta"], "+.4g"),
            _ci(m["ci"]), _num(m["p_value"], ".3g"), _num(m["p_holm"], ".3g"),
            str(min(m["n_baseline"], m["n_variant"])),
        ]))  # fmt: skip
    lines += [f"reason: {r}" for r in result["reasons"]]
    lines += [f"recommendation: {r}" for r in result["recommendations"]]
    return "\n".join(lines)


def result_of(view: dict[str, Any], verdict: dict[str, Any]) -> dict[str, Any]:
    metrics = verdict["metrics"]
    ordered = dict(sorted(metrics.items(), key=lambda kv: ROLE_ORDER.get(kv[1]["role"], 3)))
    return {
        "verdict": verdict["verdict"],
        "metrics": ordered,
        "spec_hash": verdict["spec_hash"],
        "experiment_id": view["id"],
        "name": view["name"],
        "versions": view["versions"],
        "reasons": verdict["reasons"],
        "recommendations": verdict["recommendations"],
        "checks": verdict["checks"],
        "judge_version": verdict["judge_version"],
    }


def run(args: argparse.Namespace) -> int:
    try:
        spec = load(args.file)
    except SpecError as exc:
        print(f"maas experiment: {exc}", file=sys.stderr)
        return 2
    settings = Settings(**({"data_dir": args.data_dir} if args.data_dir else {}))
    key = admin_key(settings)
    if not key:
        print("maas experiment: no admin key: set MAAS_ADMIN_KEY or pass --data-dir of "
              "`maas serve`", file=sys.stderr)  # fmt: skip
        return 2
    url = args.url or f"http://{settings.host}:{settings.port}"
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as h:
        resp = h.post(BASE, json={"spec": spec.raw, "who": "maas experiment run"})
        if resp.status_code in (409, 422):
            print(f"maas experiment: {resp.json()['error']['message']}", file=sys.stderr)
            return 2
        started = _ok(resp)
        print(f"experiment {started['id']} ({spec.name}) on {url}", file=sys.stderr)
        view = follow(h, started["id"], args.poll)
        if view["status"] != "done":
            print(f"maas experiment: {view['status']}: {view.get('error')}", file=sys.stderr)
            return 1
        result = result_of(view, _ok(h.get(f"{BASE}/{view['id']}/verdict")))
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
