"""`maas bench load`: many users and dialogs at once through the HTTP API, for a fixed time.

One process runs the scripted LLM (0 ms or a fixed latency per call), a fresh Postgres database,
the real app under uvicorn and C concurrent dialogs spread over N users (a dialog keeps its
thread for a few messages, then starts a new one). Every second it samples requests/s, errors,
the connection pool (size, in use) and the run queues; at the end it prints latency percentiles.
Then the two-tenant row: a quiet tenant's chat latency alone, and beside one tenant flooding with
`concurrency` dialogs at once (what fair claiming and per-user express slots must protect).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from bench.chat import THREAD_LEN, Outcome, send_chat
from bench.database import Database, fresh_database, server_version
from bench.harness import ADMIN_KEY, machine_info, publish, run_served, serving
from bench.scripted_llm import Reply, ScriptedLLM, default_content
from bench.stats import summarize
from maas.db.queries import q
from maas.settings import Settings

TOPICS = ("garden", "bicycle", "sister", "recipe", "holiday", "piano", "dog", "office")


@dataclass(frozen=True)
class LoadConfig:
    users: int
    concurrency: int
    duration_s: float
    llm_latency_ms: float = 0.0
    workers: int | None = None
    pool_max: int | None = None
    sample_s: float = 1.0
    json_path: Path | None = None
    two_tenant_s: float = 10.0  # each phase of the two-tenant row; 0 skips it

    @property
    def workers_per_stage(self) -> int:
        return self.workers or max(4, min(self.concurrency, 16))

    @property
    def pool(self) -> int:
        return self.pool_max or min(self.workers_per_stage * 3 + 10, 90)


@dataclass
class Sample:
    t_s: float
    requests: int
    errors: int
    pool_size: int
    pool_in_use: int
    queues: dict[str, int]


@dataclass(frozen=True)
class TwoTenant:
    """One quiet tenant chatting one message at a time, alone and then beside a flooding tenant."""

    alone: list[Outcome]
    flooded: list[Outcome]
    flood: list[Outcome]
    flood_s: float

    def quiet(self, outcomes: list[Outcome]) -> dict[str, float]:
        return summarize([o.latency_ms for o in outcomes if o.error is None])

    @property
    def errors(self) -> int:
        return sum(o.error is not None for o in self.alone + self.flooded + self.flood)


@dataclass
class LoadReport:
    cfg: LoadConfig
    machine: dict[str, Any]
    wall_s: float
    outcomes: list[Outcome]
    samples: list[Sample]
    two_tenant: TwoTenant | None = None
    latency: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.latency = summarize([o.latency_ms for o in self.outcomes if o.error is None])

    @property
    def ok(self) -> int:
        return sum(o.error is None for o in self.outcomes)

    @property
    def errors(self) -> int:
        flood_errors = self.two_tenant.errors if self.two_tenant else 0
        return len(self.outcomes) - self.ok + flood_errors

    @property
    def rps(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else 0.0


def load_settings(cfg: LoadConfig, db: Database, llm_url: str, tmp: Path) -> Settings:
    w = cfg.workers_per_stage
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=SecretStr(db.dsn),
        data_dir=tmp,
        admin_key=SecretStr(ADMIN_KEY),
        llm_base_url=llm_url,
        llm_api_key=SecretStr("bench"),
        llm_model="scripted",
        embedder="none",
        poll_s=0.5,
        pool_max=cfg.pool,
        analyzer_concurrency=w,
        assembler_concurrency=w,
        responder_concurrency=w,
        rate_limit_per_min=0,  # the load is the point; a per-key limit would shape it
        chat_wait_s=60.0,
        shutdown_grace_s=5.0,
        log_level="WARNING",
    )


def scripted_latency(latency_ms: float) -> Any:
    def handler(stage: str | None, body: dict[str, Any]) -> Reply:
        return Reply(content=default_content(stage, body), delay_s=latency_ms / 1000)

    return handler


async def create_users(base_url: str, n: int, prefix: str = "load") -> list[str]:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0, headers=headers) as http:
        keys = []
        for i in range(n):
            resp = await http.post("/v1/admin/users", json={"name": f"{prefix}-{i}"})
            resp.raise_for_status()
            keys.append(str(resp.json()["api_key"]))
        return keys


async def dialog(http: httpx.AsyncClient, n: int, until: float, out: list[Outcome]) -> None:
    """One conversation after another until the deadline; a new thread every THREAD_LEN."""
    thread_id: str | None = None
    i = 0
    while time.monotonic() < until:
        if i % THREAD_LEN == 0:
            thread_id = None
        topic = TOPICS[(n + i) % len(TOPICS)]
        outcome = await send_chat(
            http, f"Dialog {n} says {i}: tell me about my {topic}.", thread_id
        )
        thread_id = outcome.thread_id
        out.append(outcome)
        i += 1


async def sample_loop(
    app: Any, t0: float, out: list[Outcome], samples: list[Sample], every: float
) -> None:
    pool = app.state.service.runtime.pool
    while True:
        await asyncio.sleep(every)
        rows = await pool.fetch(q("queue_depth"))
        size = pool.get_size()
        samples.append(
            Sample(
                round(time.monotonic() - t0, 2),
                len(out),
                sum(o.error is not None for o in out),
                size,
                size - pool.get_idle_size(),
                {r["status"]: int(r["n"]) for r in rows},
            )
        )


def user_client(base_url: str, key: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}", "X-MaaS-Client": "bench"},
        timeout=httpx.Timeout(120.0),
        limits=httpx.Limits(max_connections=connections),
    )


async def drive(app: Any, base_url: str, cfg: LoadConfig) -> tuple[list[Outcome], list[Sample]]:
    keys = await create_users(base_url, cfg.users)
    clients = [user_client(base_url, k, cfg.concurrency + 10) for k in keys]
    out: list[Outcome] = []
    samples: list[Sample] = []
    t0 = time.monotonic()
    sampler = asyncio.create_task(sample_loop(app, t0, out, samples, cfg.sample_s))
    try:
        until = t0 + cfg.duration_s
        await asyncio.gather(
            *(dialog(clients[n % len(clients)], n, until, out) for n in range(cfg.concurrency))
        )
    finally:
        sampler.cancel()
        for client in clients:
            await client.aclose()
    return out, samples


async def two_tenants(base_url: str, cfg: LoadConfig) -> TwoTenant:
    """The quiet tenant alone for two_tenant_s, then again while the other tenant runs
    `concurrency` dialogs at once (started a second earlier, so the flood is under way)."""
    quiet_key, flood_key = await create_users(base_url, 2, prefix="tenant")
    quiet = user_client(base_url, quiet_key, 4)
    flood = user_client(base_url, flood_key, cfg.concurrency + 10)
    alone: list[Outcome] = []
    flooded: list[Outcome] = []
    flooding: list[Outcome] = []
    try:
        await dialog(quiet, 0, time.monotonic() + cfg.two_tenant_s, alone)
        t0 = time.monotonic()
        until = t0 + 1.0 + cfg.two_tenant_s
        floods = [dialog(flood, n, until, flooding) for n in range(1, cfg.concurrency + 1)]
        await asyncio.gather(*floods, _after(1.0, dialog(quiet, 0, until, flooded)))
        flood_s = time.monotonic() - t0
    finally:
        await quiet.aclose()
        await flood.aclose()
    return TwoTenant(alone, flooded, flooding, flood_s)


async def _after(delay_s: float, work: Any) -> None:
    await asyncio.sleep(delay_s)
    await work


async def bench_load(cfg: LoadConfig) -> LoadReport:
    with (
        tempfile.TemporaryDirectory(prefix="maas-load-", ignore_cleanup_errors=True) as tmp,
        ScriptedLLM() as llm,
    ):
        llm.set_handler(scripted_latency(cfg.llm_latency_ms))
        async with fresh_database(Path(tmp)) as db:
            async with serving(load_settings(cfg, db, llm.base_url, Path(tmp))) as served:
                t0 = time.monotonic()
                outcomes, samples = await served.run(drive(served.app, served.base_url, cfg))
                wall = time.monotonic() - t0
                pair = None
                if cfg.two_tenant_s > 0:
                    pair = await served.run(two_tenants(served.base_url, cfg))
            machine = machine_info(db, await server_version(db.dsn))
    return LoadReport(cfg, machine, wall, outcomes, samples, pair)


# --------------------------------------------------------------------------- output


def _series(samples: list[Sample]) -> list[str]:
    lines = [f"  {'t (s)':>6} {'req/s':>7} {'errors':>6} {'pool':>5} {'in use':>6}  queues"]
    previous = 0
    last_t = 0.0
    for s in samples:
        rate = (s.requests - previous) / max(s.t_s - last_t, 1e-9)
        previous, last_t = s.requests, s.t_s
        queues = " ".join(f"{k}={v}" for k, v in s.queues.items() if v) or "-"
        lines.append(
            f"  {s.t_s:>6.1f} {rate:>7.1f} {s.errors:>6} {s.pool_size:>5} {s.pool_in_use:>6}"
            f"  {queues}"
        )
    return lines


def render(r: LoadReport) -> str:
    cfg, m, lat = r.cfg, r.machine, r.latency
    errors = Counter(o.error for o in r.outcomes if o.error).most_common(5)
    return "\n".join(
        [
            "MaaS load benchmark (POST /v1/chat, many users and dialogs at once)",
            f"  machine      {m['cpu_count']} CPUs, Python {m['python']} ({m['event_loop']}),"
            f" {m['database']} Postgres {m['postgres']}",
            f"  load         {cfg.concurrency} concurrent dialogs over {cfg.users} users for"
            f" {cfg.duration_s:g} s, scripted LLM {cfg.llm_latency_ms:g} ms per call",
            f"  service      {cfg.workers_per_stage} workers per stage, pool max {cfg.pool},"
            " client + service + LLM in one process",
            "",
            f"  requests     {len(r.outcomes)} ({r.ok} ok, {r.errors} errors)"
            f" in {r.wall_s:.1f} s = {r.rps:.1f} requests/s",
            f"  latency ms   p50 {lat['p50']:.0f}   p95 {lat['p95']:.0f}   p99 {lat['p99']:.0f}"
            f"   max {lat['max']:.0f}",
            *(f"  error        {n} x {e}" for e, n in errors),
            "",
            *_series(r.samples),
            *_two_tenant_lines(r),
        ]
    )


def _two_tenant_lines(r: LoadReport) -> list[str]:
    pair = r.two_tenant
    if pair is None:
        return []
    alone, flooded = pair.quiet(pair.alone), pair.quiet(pair.flooded)
    flood_ok = sum(o.error is None for o in pair.flood)
    return [
        "",
        f"  two tenants  one chats one message at a time; the other floods with"
        f" {r.cfg.concurrency} concurrent dialogs",
        f"  {'quiet tenant':<28} {'chats':>6} {'p50 ms':>8} {'p95 ms':>8}",
        f"  {'alone':<28} {len(pair.alone):>6} {alone['p50']:>8.0f} {alone['p95']:>8.0f}",
        f"  {'beside the flood':<28} {len(pair.flooded):>6} {flooded['p50']:>8.0f}"
        f" {flooded['p95']:>8.0f}",
        f"  flood        {len(pair.flood)} requests ({flood_ok} ok) in {pair.flood_s:.1f} s"
        f" = {flood_ok / max(pair.flood_s, 1e-9):.1f} requests/s",
    ]


def _two_tenant_json(pair: TwoTenant | None) -> dict[str, Any] | None:
    if pair is None:
        return None
    rounded = {
        k: {m: round(v, 2) for m, v in pair.quiet(o).items()}
        for k, o in (("alone", pair.alone), ("beside_flood", pair.flooded))
    }
    return {
        "quiet_latency_ms": rounded,
        "quiet_chats": {"alone": len(pair.alone), "beside_flood": len(pair.flooded)},
        "flood_requests": len(pair.flood),
        "flood_ok": sum(o.error is None for o in pair.flood),
        "flood_s": round(pair.flood_s, 2),
        "errors": pair.errors,
    }


def to_json(r: LoadReport) -> dict[str, Any]:
    return {
        "config": {
            "users": r.cfg.users,
            "concurrency": r.cfg.concurrency,
            "duration_s": r.cfg.duration_s,
            "llm_latency_ms": r.cfg.llm_latency_ms,
            "workers_per_stage": r.cfg.workers_per_stage,
            "pool_max": r.cfg.pool,
        },
        "machine": r.machine,
        "requests": len(r.outcomes),
        "ok": r.ok,
        "errors": r.errors,
        "requests_per_s": round(r.rps, 2),
        "latency_ms": {k: round(v, 2) for k, v in r.latency.items()},
        "samples": [s.__dict__ for s in r.samples],
        "two_tenant": _two_tenant_json(r.two_tenant),
    }


def config_from(args: argparse.Namespace) -> LoadConfig:
    if args.users < 1 or args.concurrency < 1 or args.duration <= 0:
        raise ValueError("--users and --concurrency must be >= 1, --duration > 0")
    if args.two_tenant_seconds < 0:
        raise ValueError("--two-tenant-seconds must be >= 0 (0 skips the two-tenant row)")
    return LoadConfig(
        args.users,
        args.concurrency,
        args.duration,
        args.llm_latency_ms,
        args.workers,
        args.pool_max,
        json_path=args.json,
        two_tenant_s=args.two_tenant_seconds,
    )


def run_load(args: argparse.Namespace) -> int:
    """Prints the report (and writes --json); 1 if any request failed."""
    try:
        cfg = config_from(args)
    except ValueError as exc:
        print(f"maas bench load: {exc}", file=sys.stderr)
        return 2
    report = run_served("maas bench load", bench_load(cfg))
    if report is None:
        return 130
    publish(render(report), to_json(report), cfg.json_path)
    return 0 if report.errors == 0 else 1
