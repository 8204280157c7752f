"""Tables and JSON of the performance harness (every figure beside its floor and its target), and
the run that prints them."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

from bench.harness import publish
from bench.pipeline import PerfConfig, Results, run_perf
from bench.stats import summarize

STAGES = ("queue", "analyzer", "assembler", "responder", "total")
MODE = "offline mode (in-process extractive model: zero-latency, no LLM hop), no embeddings"
HOPS_CHAT = 4  # NOTIFY hand-offs a chat needs at least: NEW, ANALYZED, READY, COMPLETED


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    floor: float | None  # measured in the same run
    floor_label: str
    target: float | None
    higher_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        if self.floor is None or self.floor <= 0 or math.isnan(self.value):
            return None
        return self.value / self.floor

    @property
    def met(self) -> bool | None:
        if self.target is None or math.isnan(self.value):
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


def _p(values: list[float]) -> dict[str, float]:
    return summarize(values)


def messages_per_s(res: Results) -> float:
    ok = sum(o.error is None for o in res.load)
    return ok / res.load_wall_s if res.load_wall_s > 0 else 0.0


def archivist_turns_per_s(res: Results) -> float:
    turns, _, seconds = res.archivist
    return turns / seconds if seconds > 0 else 0.0


def figures(res: Results, cfg: PerfConfig) -> list[Figure]:
    chat = _p([o.latency_ms for o in res.chat if o.error is None])
    n = cfg.chat_scale
    bare = _p(res.bare_search.get(n, []))
    notify = res.notify.get("notify_rtt_ms", math.nan)
    chat_floor = bare["p50"] + HOPS_CHAT * notify
    floor_label = f"bare search @{n} p50 + {HOPS_CHAT} NOTIFY hops"
    out = [
        Figure(f"chat e2e p50 @{n}", chat["p50"], "ms", chat_floor, floor_label, 10.0),
        Figure(f"chat e2e p95 @{n}", chat["p95"], "ms", chat_floor, floor_label, 25.0),
        Figure(f"chat e2e p99 @{n}", chat["p99"], "ms", chat_floor, floor_label, None),
    ]
    if res.chat_httpx:  # the same chats from a Python client built on httpx (its own CPU in it)
        httpx_chat = _p([o.latency_ms for o in res.chat_httpx if o.error is None])
        lean = "lean-client p50"
        out.append(
            Figure("  p50 sent with httpx", httpx_chat["p50"], "ms", chat["p50"], lean, None)
        )

    for count in cfg.scales:
        ctx, b = _p(res.context[count]), _p(res.bare_search[count])
        target = {10_000: 15.0, 100_000: 40.0}.get(count)
        out.append(
            Figure(f"context p95 @{count}", ctx["p95"], "ms", b["p95"], "bare search p95", target)
        )
    load = _p([o.latency_ms for o in res.load if o.error is None])
    fresh = _p(res.freshness_ms)
    return out + [
        Figure(f"messages/s, {cfg.dialogs} dialogs", messages_per_s(res), "/s", None, "", 300.0,
               higher_is_better=True),
        Figure("  chat p50 at that load", load["p50"], "ms", chat["p50"], "unloaded p50", None),
        Figure("  chat p95 at that load", load["p95"], "ms", chat["p95"], "unloaded p95", None),
        Figure("archivist turns/s", archivist_turns_per_s(res), "/s", None, "", 500.0,
               higher_is_better=True),
        Figure("freshness p50 (told -> found)", fresh["p50"], "ms", None, "", None),
        Figure("freshness p95 (told -> found)", fresh["p95"], "ms", None, "", 1000.0),
        Figure("cold start", res.cold_start_s, "s", res.bare_pg_start_s, "bare PG start", 3.0),
        Figure(f"erase user, {res.erased_memories} memories", res.erase_s, "s", None, "", 1.0),
        Figure("peak RSS of the service", res.rss_mb, "MB", None, "", 300.0),
    ]  # fmt: skip


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def _figure_row(f: Figure) -> str:
    ratio = "-" if f.ratio is None else f"{f.ratio:.1f}x"
    target = "-" if f.target is None else ("≥ " if f.higher_is_better else "≤ ") + f"{f.target:g}"
    met = {True: "yes", False: "NO", None: ""}[f.met]
    floor = f"{_num(f.floor)} {f.floor_label}" if f.floor is not None else "-"
    return (
        f"  {f.name:<30}{_num(f.value):>10} {f.unit:<3}  {floor:<44}{ratio:>8}  {target:>7}  {met}"
    )


def scale_rows(res: Results, cfg: PerfConfig) -> list[str]:
    lines = [
        f"  {'memories':>9} {'preload s':>9}  {'context p50':>11} {'p95':>7}"
        f"  {'bare search p50':>15} {'p95':>7}  {'ratio p50':>9}"
    ]
    for count in cfg.scales:
        ctx, bare = _p(res.context[count]), _p(res.bare_search[count])
        ratio = ctx["p50"] / bare["p50"] if bare["p50"] > 0 else math.nan
        lines.append(
            f"  {res.loads[count].memories:>9} {res.loads[count].seconds:>9.1f}"
            f"  {_num(ctx['p50']):>11} {_num(ctx['p95']):>7}"
            f"  {_num(bare['p50']):>15} {_num(bare['p95']):>7}  {_num(ratio, 1):>8}x"
        )
    return lines


STAGE_LABELS = {
    "queue": "claim wait (NEW → analyzer)",
    "analyzer": "analyzer (claim → commit)",
    "assembler": "assembler (claim → commit)",
    "responder": "responder (claim → commit)",
    "handoffs": "hand-offs between stages",
    "total": "total in the pipeline",
    "api": "HTTP + submit + wake + reply",
}


def stage_stats(res: Results) -> dict[str, dict[str, float]]:
    stats = {s: _p([t[s] for t in res.timings if s in t]) for s in STAGES}
    stats["handoffs"] = _p(
        [t["total"] - sum(t.get(s, 0.0) for s in STAGES[:-1]) for t in res.timings if "total" in t]
    )
    totals = [t.get("total") for t in res.timings]
    done = [o for o in res.chat if o.error is None]
    stats["api"] = _p([o.latency_ms - t for o, t in zip(done, totals, strict=False) if t])
    return stats


def stage_rows(res: Results) -> list[str]:
    lines = [f"  {'span (ms)':<32}{'p50':>8}{'p95':>8}{'p99':>8}   mean work / write"]
    for name, s in stage_stats(res).items():
        split = res.stage_split_ms.get(name)
        extra = f"   {split['work']:.2f} / {split['write']:.2f}" if split else ""
        lines.append(
            f"  {STAGE_LABELS[name]:<32}{_num(s['p50']):>8}{_num(s['p95']):>8}{_num(s['p99']):>8}"
            + extra
        )
    return lines


def render(res: Results, cfg: PerfConfig) -> str:
    m = res.machine
    header = (
        f"  {'figure':<30}{'value':>10}      {'floor (same run)':<44}{'ratio':>8}  {'target':>7}"
        "  met"
    )
    return "\n".join(
        [
            "MaaS performance harness (maas bench pipeline)",
            f"  machine   {m.get('cpu_count')} CPUs, Linux {m.get('kernel')}, Python "
            f"{m.get('python')}, Postgres {m.get('postgres')} {m.get('database')}",
            f"  service   `maas serve` in its own process, {MODE}",
            f"  floor     NOTIFY round trip {_num(res.notify.get('notify_rtt_ms'), 3)} ms, "
            f"SELECT 1 {_num(res.notify.get('select_rtt_ms'), 3)} ms (bare asyncpg, median)",
            "",
            "  /v1/context (one client, sequential) vs the same search SQL run bare",
            *scale_rows(res, cfg),
            "",
            f"  POST /v1/chat @{cfg.chat_scale}, one client, {cfg.messages} messages (latencies"
            " from a lean keep-alive HTTP client; httpx's own below)",
            *stage_rows(res),
            "",
            header,
            *(_figure_row(f) for f in figures(res, cfg)),
            "",
            f"  CPU per message at load: {_cpu_line(res)} (client: this process, the load"
            " generator)",
            f"  wall time {res.wall_s:.0f} s",
        ]
    )


def _cpu_line(res: Results) -> str:
    per = cpu_ms_per_message(res)
    return ", ".join(f"{k} {_num(v)} ms" for k, v in per.items()) or "-"


def _pcts(values: list[float], keys: tuple[str, ...] = ("p50", "p95")) -> dict[str, float | None]:
    s = _p(values)
    return {k: None if math.isnan(s[k]) else round(s[k], 3) for k in keys}


def to_json(res: Results, cfg: PerfConfig) -> dict[str, Any]:
    chat = [o.latency_ms for o in res.chat if o.error is None]
    turns, memories, seconds = res.archivist
    return {
        "chat_latency_ms": _pcts(chat, ("p50", "p95", "p99")) | {"memories": cfg.chat_scale},
        "chat_latency_httpx_ms": _pcts([o.latency_ms for o in res.chat_httpx if o.error is None]),
        "context_latency_ms": {str(n): _pcts(res.context[n]) for n in cfg.scales},
        "messages_per_s": round(messages_per_s(res), 2),
        "archivist_turns_per_s": round(archivist_turns_per_s(res), 1),
        "freshness_ms": _pcts(res.freshness_ms) | {"samples": len(res.freshness_ms)},
        "cold_start_s": round(res.cold_start_s, 3),
        "erase_10k_s": round(res.erase_s, 3),
        "rss_mb": round(res.rss_mb, 1),
        "floor": {
            "notify_rtt_ms": round(res.notify.get("notify_rtt_ms", math.nan), 4),
            "select_rtt_ms": round(res.notify.get("select_rtt_ms", math.nan), 4),
            "bare_search_ms": {str(n): _pcts(res.bare_search[n]) for n in cfg.scales},
            "bare_postgres_start_s": round(res.bare_pg_start_s, 3),
        },
        "figures": [_figure_json(f) for f in figures(res, cfg)],
        "stages_ms": {k: _round(v) for k, v in stage_stats(res).items()},
        "stage_work_write_ms": {
            k: {n: round(x, 3) for n, x in v.items()} for k, v in res.stage_split_ms.items()
        },
        "load": _load_json(res, cfg),
        "archivist": {"turns": turns, "memories": memories, "seconds": round(seconds, 3)},
        "erase": {"memories": res.erased_memories},
        "preload": {str(n): vars(res.loads[n]) for n in cfg.scales},
        "mode": MODE,
        "machine": res.machine,
        "wall_s": round(res.wall_s, 1),
    }


def _round(s: dict[str, float]) -> dict[str, float | None]:
    return {k: None if math.isnan(v) else round(v, 3) for k, v in s.items()}


def _figure_json(f: Figure) -> dict[str, Any]:
    return {
        "name": f.name.strip(),
        "value": None if math.isnan(f.value) else round(f.value, 3),
        "unit": f.unit,
        "floor": None if f.floor is None else round(f.floor, 3),
        "floor_is": f.floor_label or None,
        "ratio": None if f.ratio is None else round(f.ratio, 2),
        "target": f.target,
        "met": f.met,
    }


def cpu_ms_per_message(res: Results) -> dict[str, float | None]:
    ok = sum(o.error is None for o in res.load)
    return {k: round(v / ok * 1000, 2) if ok else None for k, v in res.load_cpu_s.items()}


def _load_json(res: Results, cfg: PerfConfig) -> dict[str, Any]:
    ok = [o.latency_ms for o in res.load if o.error is None]
    return {
        "dialogs": cfg.dialogs,
        "users": cfg.users,
        "seconds": round(res.load_wall_s, 2),
        "completed": len(ok),
        "failures": len(res.load) - len(ok),
        "latency_ms": _pcts(ok, ("p50", "p95", "p99")),
        "cpu_ms_per_message": cpu_ms_per_message(res),
    }


def run(cfg: PerfConfig) -> int:
    """Run the harness, print the tables (and write --json); 1 if any chat failed."""
    results = asyncio.run(run_perf(cfg))
    publish(render(results, cfg), to_json(results, cfg), cfg.json_path)
    return 1 if any(o.error for o in (*results.chat, *results.chat_httpx, *results.load)) else 0
