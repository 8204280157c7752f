"""`maas experiment run FILE`: validate an experiment file, run it on a running MaaS (both arms
through the User Emulator, paired), wait for the verdict and print its table. Registered through
the entry point group maas.commands (maas never imports this).

Exit status: 0 a verdict was reached (whatever it is), 1 the experiment failed or stopped,
2 the file is invalid or MaaS refused it.

`maas experiment simulate [--aa] [--effect D] [--units 4,8,50] [--runs N] [--json PATH]`: many
simulated experiments through the same analysis and decision code (selflearn.teacher.simulate),
no MaaS needed; prints the false SHIP / ROLLBACK rates (A/A) or the share shipped, per size.
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
    sim = inner.add_parser("simulate", help="error rates and power of the verdict rule")
    sim.add_argument("--aa", action="store_true", help="identical arms (the default)")
    sim.add_argument("--effect", type=float, default=None, help="true change of the primary")
    sim.add_argument("--units", default="4,8,50", help="paired units per experiment, e.g. 4,8,50")
    sim.add_argument("--runs", type=int, default=1000, help="experiments per size")
    sim.add_argument("--alpha", type=float, default=0.05)
    sim.add_argument("--test", choices=("t", "wilcoxon"), default="t")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--json", type=Path, default=None, help="write the rates here")
    sim.add_argument("--monitor", action="store_true", help="the auto-rollback monitor instead")
    sim.add_argument("--days", type=int, default=7, help="--monitor: days of monitoring")
    sim.add_argument("--period-min", type=float, default=1.0, help="--monitor: minutes per look")
    sim.add_argument("--users", type=int, default=60, help="--monitor: users with history")
    sim.add_argument(
        "--harm",
        action="append",
        default=[],
        metavar="RULE=DELTA",
        help="--monitor: the active arm's shift, e.g. found_anything_rate=-0.3",
    )
    sim.set_defaults(func=simulate)


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


def _end(x: Any, inf: str) -> str:
    return inf if x is None else f"{x:+.4g}"


def _ci(ci: Any) -> str:
    """[lo, hi]; a missing end (JSON null) is an interval this sample cannot bound."""
    return "n/a" if not ci else f"[{_end(ci[0], '-inf')}, {_end(ci[1], '+inf')}]"


_COLUMNS = (("metric", 24, "<"), ("role", 10, "<"), ("baseline", 10, ">"), ("variant", 10, ">"),
            ("delta", 10, ">"), ("CI (1-2α)", 24, ">"), ("p", 10, ">"), ("p Holm", 10, ">"),
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
    lines.append(power_line(result.get("checks") or {}))
    lines += [f"reason: {r}" for r in result["reasons"]]
    lines += [f"recommendation: {r}" for r in result["recommendations"]]
    return "\n".join(lines)


def power_line(checks: dict[str, Any]) -> str:
    p = checks.get("power")
    if not p:
        return "power: n/a"
    return (f"power: {p['power']:.2f} to find a change of {p['mde']:g} in the primary (SD "
            f"{p['sd']:g}, one-sided α {p['alpha_primary']:.3g}) with {p['clusters']} clusters; "
            f"{p['clusters_needed']} clusters give {p['target']:.0%}")  # fmt: skip


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


def _fail(message: str) -> int:
    print(f"maas experiment simulate: {message}", file=sys.stderr)
    return 2


def simulate_monitor(args: argparse.Namespace) -> int:
    from selflearn.teacher import simulate_monitor as sm
    from selflearn.teacher.guardrails import RULES, Config

    harm: dict[str, float] = {}
    for item in args.harm:
        name, _, value = item.partition("=")
        if name not in {r.metric for r in RULES}:
            return _fail(
                f"--harm {item}: the rule must be one of {', '.join(r.metric for r in RULES)}"
            )
        try:
            harm[name] = float(value)
        except ValueError:
            return _fail(f"--harm {item}: not a number after '='")
    if args.days < 1 or args.runs < 1 or args.users < 5 or args.period_min <= 0:
        return _fail("--days ≥ 1, --runs ≥ 1, --users ≥ 5, --period-min > 0")
    traffic = sm.Traffic(users=args.users, period_min=args.period_min, harm=harm)
    result = sm.run(args.runs, args.days, traffic, Config(), args.seed)
    print(sm.table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def simulate(args: argparse.Namespace) -> int:
    from selflearn.teacher import simulate as sim  # numpy work only when asked

    if args.monitor:
        return simulate_monitor(args)
    if args.aa and args.effect not in (None, 0.0):
        print("maas experiment simulate: --aa and a non-zero --effect exclude each other",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        units = [int(u) for u in args.units.split(",") if u.strip()]
    except ValueError:
        print(f"maas experiment simulate: --units: not a list of integers: {args.units}",
              file=sys.stderr)  # fmt: skip
        return 2
    if not units or min(units) < 2 or args.runs < 1 or not 0 < args.alpha <= 0.2:
        print("maas experiment simulate: --units ≥ 2 each, --runs ≥ 1, 0 < --alpha ≤ 0.2",
              file=sys.stderr)  # fmt: skip
        return 2
    result = sim.run(units, args.runs, args.effect or 0.0, args.seed, args.alpha, args.test)
    print(sim.table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0
