"""Cycle reports a person can read: Markdown (stored on the cycle) and HTML (rendered on demand
from the same facts, autoescaped). What was tested, the results with CIs, the verdict, what
changed and why, the parameters in force, the history of changes and rollbacks, goal progress."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from maas.params import defaults
from selflearn import tuner
from selflearn.manager import goals, plots
from selflearn.queries import q
from selflearn.teacher.metrics import METRICS
from selflearn.teacher.spec import ROLE_ORDER

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _plain(value: Any) -> Any:
    """JSON-safe (datetimes and uuids as text): the facts are stored in the cycle's result."""
    return json.loads(json.dumps(value, default=str))


def metric_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [dict(m, name=name) for name, m in (metrics or {}).items()]
    return sorted(rows, key=lambda r: (ROLE_ORDER.get(r.get("role", ""), 3), r["name"]))


async def _experiments(pool: Any, cycle_id: Any) -> list[dict[str, Any]]:
    out = []
    for r in await pool.fetch(q("mgr_cycle_experiment_verdicts"), cycle_id):
        spec = r["spec"] or {}
        out.append({
            "id": str(r["id"]), "name": r["name"], "role": r["role"], "trial": r["trial"],
            "status": r["status"], "error": r["error"], "variant": spec.get("variant", {}),
            "emulator": spec.get("emulator", {}), "replay": spec.get("replay"),
            "primary_metric": spec.get("primary_metric"),
            "verdict": r["verdict"], "reasons": list(r["reasons"] or []),
            "recommendations": list(r["recommendations"] or []),
            "metrics": metric_rows(r["metrics"] or {}), "checks": r["checks"] or {},
        })  # fmt: skip
    return out


async def _active(pool: Any) -> dict[str, Any]:
    async with pool.acquire() as conn:
        row = await tuner.active(conn)
    if row is None:
        return {"label": "MaaS's own (built-in / MAAS_PARAMS)", "diff": {}}
    params = tuner.view(row)["params"] or {}
    return {"label": row["label"], "diff": tuner.diff(dict(defaults().values), params)}


async def facts(
    pool: Any,
    cycle_id: Any,
    status: str,
    outcome: str | None,
    result: dict[str, Any],
    error: str | None,
) -> dict[str, Any]:
    row = await pool.fetchrow(q("mgr_cycle_get"), cycle_id)
    goal = None
    if row["goal_id"] is not None:
        async with pool.acquire() as conn:
            goal = await goals.get(conn, row["goal_id"])
    history = [dict(h) for h in await pool.fetch(q("mgr_audit_recent"), 10)]
    out: dict[str, Any] = _plain({
        "cycle": {"id": row["id"], "kind": row["kind"], "status": status, "outcome": outcome,
                  "requested_by": row["requested_by"], "started_at": row["started_at"],
                  "finished_at": datetime.now(UTC), "error": error, "config": row["config"]},
        "goal": goal,
        "experiments": await _experiments(pool, cycle_id),
        "decision": _decision(status, outcome, result),
        "micro": {k: result.get(k) for k in ("metrics", "sensor", "emulator", "problems")}
        if row["kind"] == "micro" else None,
        "trials": result.get("trials"),
        "search": _search(result),
        "confirmation": _confirmation(result),
        "shipped": await _shipped(pool, result) if outcome == "shipped" else None,
        "active": await _active(pool),
        "history": history,
    })  # fmt: skip
    return out


def _search(result: dict[str, Any]) -> dict[str, Any] | None:
    """A replay search's figures: its seeds, the questions it asked, every trial's objective
    (and the primary metric's baseline and variant), the best."""
    if "search" not in result:
        return None
    keys = ("seeds", "search", "space", "inert", "best")
    return {k: result.get(k) for k in keys}


def _confirmation(result: dict[str, Any]) -> dict[str, Any] | None:
    """The confirmation's figures (fresh seeds): the plan, its verdict and metrics, per type."""
    if "confirm" not in result:
        return None
    by_type = ((result.get("checks") or {}).get("replay") or {}).get("by_type")
    return {"plan": result["confirm"], "verdict": result.get("verdict"),
            "metrics": result.get("metrics"), "by_type": by_type,
            "experiment_id": result.get("experiment_id")}  # fmt: skip


async def _shipped(pool: Any, result: dict[str, Any]) -> dict[str, Any] | None:
    """The version a cycle activated: its number, label, full parameters and the change."""
    version = result.get("activated")
    if version is None:
        return None
    async with pool.acquire() as conn:
        row = await tuner.version(conn, int(version))
    return {"version": row["version"], "label": row["label"], "params": row["params"],
            "diff": result.get("diff", {})}  # fmt: skip


def _decision(status: str, outcome: str | None, result: dict[str, Any]) -> dict[str, Any]:
    """What changed and why, in words."""
    why = list(result.get("reasons", []))
    if result.get("violated"):
        why += [f"goal constraint: {v}" for v in result["violated"]]
    text = {
        "shipped": f"Activated parameter version tuner-{result.get('activated')}: the "
        "Teacher's verdict is SHIP and the change is not critical.",
        "proposed": f"Proposal {result.get('proposal')} waits for a person's approval: the "
        "verdict is SHIP but the change is critical.",
        "held": "Nothing changed: the variant was not shown to be better.",
        "variant harmful": "Nothing changed: a guardrail got worse beyond its margin.",
        "invalid": "Nothing changed: the experiment's result cannot be acted on.",
        "blocked by a constraint": "Nothing changed: the variant breaks a goal constraint.",
        "healthy": "Health check: every constraint holds and no turn failed.",
        "degraded": "Health check found problems (below); nothing was changed.",
    }.get(outcome or "", f"The cycle ended {status}; nothing was changed.")
    return {"text": text, "why": why, "diff": result.get("diff", {}),
            "recommendations": result.get("recommendations", []),
            "warnings": result.get("warnings", [])}  # fmt: skip


# ---- Markdown ------------------------------------------------------------------------------------


def md(text: Any) -> str:
    """User text inside Markdown: no HTML, no table breaks, no line breaks."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        value = value + 0.0  # no "-0"
        return f"{value:.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"
    return str(value)


def ci(value: Any) -> str:
    """[lo, hi]; a missing end is one this sample cannot bound (too few clusters)."""
    if not value:
        return "n/a"
    lo, hi = value
    return f"[{'-∞' if lo is None else num(lo)}, {'+∞' if hi is None else num(hi)}]"


def _power_md(checks: dict[str, Any]) -> list[str]:
    """The test's level and power, from the verdict's checks."""
    p = checks.get("power")
    if not p:
        return []
    level = checks.get("ci_level")
    return [f"α {num(checks.get('alpha'))} (the goal's share for this test), intervals "
            f"{'' if level is None else f'{level:.0%} '}two-sided; power {p['power']:.2f} to "
            f"find a change of {num(p['mde'])} in the primary with {p['clusters']} scenario "
            f"clusters ({p['clusters_needed']} give {p['target']:.0%}).", ""]  # fmt: skip


def _goal_md(goal: dict[str, Any] | None) -> list[str]:
    if goal is None:
        return ["No goal: a health check of the parameters in force.", ""]
    cons = ", ".join(f"{c['metric']} {c['op']} {c['value']:g}" for c in goal["constraints"])
    progress = goal["progress"]
    return [
        f"**{md(goal['name'])}** (goal {goal['id']}, {goal['status']}): {goal['direction']} "
        f"`{goal['metric']}` to {goal['target']:g}.",
        "",
        f"- constraints: {cons or 'none'}",
        f"- first measured {num(goal['first'])}, now {num(goal['current'])}"
        f" ({'met' if goal['met'] else 'not met'}"
        f"{'' if progress is None else f', {progress:.0%} of the way'})",
        "",
    ]


def _experiment_md(x: dict[str, Any]) -> list[str]:
    change = ", ".join(f"`{k}` = {num(v)}" for k, v in x["variant"].items()) or "none"
    emulator = x["emulator"]
    played = f"{emulator.get('dialogs', '?')} dialogs per arm, seed {emulator.get('seed', '?')}"
    if x.get("replay"):
        world = x["replay"].get("world") or {}
        played = (f"replayed: world seed {world.get('seed', '—')} ({world.get('users', 0)} users), "
                  f"{len(x['replay'].get('corpus') or [])} uploaded conversation(s), "
                  f"{x['replay'].get('questions', 'all')} questions")  # fmt: skip
    out = [
        f"### {x['role']}{'' if x['trial'] is None else ' ' + str(x['trial'])}: {md(x['name'])}",
        "",
        f"Variant: {change}; {played}; status {x['status']}; verdict **{x['verdict'] or '—'}**.",
        "",
    ]
    out += _power_md(x["checks"])
    if x["metrics"]:
        out += ["| metric | role | baseline | variant | delta | CI | Holm p |",
                "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        out += [
            f"| {r['name']} | {r.get('role')} | {num(r.get('baseline'))} | {num(r.get('variant'))}"
            f" | {num(r.get('delta'))} | {ci(r.get('ci'))} | {num(r.get('p_holm'), 3)} |"
            for r in x["metrics"]
        ]
        out.append("")
    out += [f"- {md(r)}" for r in x["reasons"]] + [
        f"- advice: {md(r)}" for r in x["recommendations"]
    ]
    return [*out, ""]


def _micro_md(micro: dict[str, Any] | None) -> list[str]:
    if not micro or not micro.get("metrics"):
        return []
    out = ["## Health on the parameters in force", "", "| metric | value | CI | units |",
           "| --- | --- | --- | --- |"]  # fmt: skip
    out += [f"| {k} | {num(v['value'])} | {ci(v['ci'])} | {v['n']} |"
            for k, v in sorted(micro["metrics"].items())]  # fmt: skip
    sensor = micro.get("sensor") or {}
    out += ["", f"Sensor: {sensor.get('recorded')} of {sensor.get('runs')} finished runs recorded."]
    out += [f"- problem: {md(p)}" for p in micro.get("problems") or []]
    return [*out, ""]


def _trials_md(trials: list[dict[str, Any]] | None) -> list[str]:
    if not trials:
        return []
    out = ["## Search trials (Optuna)", "", "| trial | parameters | objective | verdict |",
           "| --- | --- | --- | --- |"]  # fmt: skip
    for t in trials:
        params = ", ".join(f"{k}={num(v)}" for k, v in t["params"].items())
        out.append(f"| {t['number']} | {params} | {num(t.get('value'))} | {t.get('verdict')} |")
    return [*out, ""]


def _search_md(f: dict[str, Any]) -> list[str]:
    search, confirm = f.get("search"), f.get("confirmation")
    out: list[str] = []
    if search:
        seeds, plan = search.get("seeds") or {}, search.get("search") or {}
        world = plan.get("world") or {}
        best = search.get("best") or {}
        out += ["## Search (replayed questions)", "",
                f"World seed {seeds.get('search')} ({world.get('users', 0)} users), "
                f"{len(plan.get('corpus') or [])} uploaded conversation(s), the `search` half of "
                f"their questions (at most {plan.get('max_questions') or 'all'} per conversation), "
                f"{plan.get('budget')} tokens. Best trial: {best.get('number')} "
                f"(objective {num(best.get('value'))}: {num(best.get('baseline'))} → "
                f"{num(best.get('variant'))}).", ""]  # fmt: skip
        out += [f"- left out (inert in a replay): `{k}`: {md(v)}"
                for k, v in (search.get("inert") or {}).items()]  # fmt: skip
        out.append("")
    if confirm:
        plan = confirm.get("plan") or {}
        primary = [m for m in (confirm.get("metrics") or {}).values()
                   if m.get("role") == "primary"]  # fmt: skip
        out += ["## Confirmation (fresh seeds: new users, new questions)", "",
                f"World seed {(plan.get('world') or {}).get('seed')}, the `confirm` half of the "
                f"corpus's questions; verdict **{confirm.get('verdict')}**."]  # fmt: skip
        out += [_effect(m) for m in primary]
        out.append("")
    shipped = f.get("shipped")
    if shipped:
        out += [f"Shipped {md(shipped['label'])}.", ""]
    return out


def _effect(m: dict[str, Any]) -> str:
    return (f"- {m['name']}: {num(m.get('baseline'))} → {num(m.get('variant'))} (CI "
            f"{ci(m.get('ci'))}, Holm p {num(m.get('p_holm'), 3)})")  # fmt: skip


def _changes_md(f: dict[str, Any]) -> list[str]:
    d = f["decision"]
    out = ["## What changed and why", "", md(d["text"]), ""]
    out += [f"- `{k}`: {num(a)} → {num(b)}" for k, (a, b) in d["diff"].items()]
    out += [f"- because: {md(w)}" for w in d["why"]]
    out += [f"- warning: {md(w)}" for w in d.get("warnings", [])]
    active = f["active"]
    out += ["", "## Parameters in force", "", f"Version: {md(active['label'])}."]
    out += [f"- `{k}`: {num(b)} (default {num(a)})" for k, (a, b) in active["diff"].items()]
    out += ["", "## History of changes and rollbacks (latest 10)", "",
            "| when (UTC) | action | by | version | reason |",
            "| --- | --- | --- | --- | --- |"]  # fmt: skip
    out += [
        f"| {str(h['at'])[:19]} | {h['action']} | {h['actor']} ({md(h['who'])}) | "
        f"{num(h['previous_version'])} → {num(h['version'])} | {md(str(h['reason'])[:160])} |"
        for h in f["history"]
    ]
    return [*out, ""]


def markdown(f: dict[str, Any]) -> str:
    c = f["cycle"]
    head = [
        f"# {c['kind'].capitalize()} cycle {str(c['id'])[:8]}: {c['outcome'] or c['status']}",
        "",
        f"Status **{c['status']}**, requested by {md(c['requested_by'])}, "
        f"{str(c['started_at'])[:19]} → {str(c['finished_at'])[:19]} UTC.",
        "",
    ]
    if c["error"]:
        head += [f"Error: {md(c['error'])}", ""]
    body = ["## Goal", "", *_goal_md(f["goal"]), *_micro_md(f["micro"]), *_search_md(f),
            *_trials_md(f["trials"])]  # fmt: skip
    if f["experiments"]:
        body += ["## What was tested", ""]
        for x in f["experiments"]:
            body += _experiment_md(x)
    return "\n".join([*head, *body, *_changes_md(f)]).rstrip() + "\n"


# ---- HTML --------------------------------------------------------------------------------------


def bars(rows: list[dict[str, Any]]) -> list[tuple[plots.Bar, dict[str, Any]]]:
    directions = {name: m.direction for name, m in METRICS.items()}
    return list(zip(plots.forest(rows, 260, directions), rows, strict=True))


def clip(text: Any, limit: int = 200) -> str:
    """A long text cut for a table cell, saying so (…); the cell's title holds it whole."""
    value = "" if text is None else str(text)
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def version(number: Any) -> str:
    """A parameter version as people read it: none is MaaS's own parameters, `built-in`."""
    return "built-in" if number is None else f"tuner-{number}"


def install(env: Environment) -> None:
    """What the report templates need, for any environment that renders them (the dashboard)."""
    env.filters.update(num=num, ci=ci, clip=clip, version=version)
    env.globals.update(bars=bars)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    install(env)
    return env


ENV = _environment()


def html(f: dict[str, Any], standalone: bool = True) -> str:
    """The report as HTML (autoescaped); standalone: a whole document, else a fragment."""
    return ENV.get_template("manager/report.html").render(f=f, standalone=standalone)
