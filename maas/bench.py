"""`maas bench pipeline`: per-stage latency and messages/s through the real HTTP entrypoint.

One process runs everything: a scripted zero-latency LLM (so only MaaS's own overhead is
measured), a fresh Postgres database (embedded in a temp dir, or on MAAS_DATABASE_URL), the real
app under uvicorn on 127.0.0.1, and concurrent httpx clients calling POST /v1/chat. The physical
floor (a bare NOTIFY -> LISTEN round trip on the same database) is measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import platform
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from maas.app import create_app
from maas.benchmarks.harness import listen_socket, until_started
from maas.db.embedded import start_embedded, stop_embedded
from maas.db.pool import connect
from maas.memory.store import fact_key
from maas.settings import Settings
from maas.testing.scripted_llm import ScriptedLLM

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

STAGES = ("queue", "analyzer", "assembler", "responder", "total")
LLM_MODE = "scripted zero-latency LLM"
ADMIN_KEY = "bench-admin"
WARMUP = 10
THREAD_LEN = 10  # a client starts a new thread after this many messages
FLOOR_ROUNDS = 200
FLOOR_CHANNEL = "maas_bench_floor"
PCTS = (50, 95, 99)


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100), linear interpolation between order statistics.

    Same as numpy's default: rank (n - 1) * p / 100 in the sorted values.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """n, mean, min, p50, p95, p99, max; NaN statistics when there are no values."""
    if not values:
        return {"n": 0, **dict.fromkeys(("mean", "min", "p50", "p95", "p99", "max"), math.nan)}
    return {
        "n": len(values),
        "mean": sum(values) / len(values),
        "min": min(values),
        **{f"p{p}": percentile(values, p) for p in PCTS},
        "max": max(values),
    }


# --------------------------------------------------------------------------- corpus

PEOPLE = (
    "Caroline", "Melanie", "Jonas", "Priya", "Tomasz", "Aiko", "Mateo", "Fatima", "Liam",
    "Sofia", "Noah", "Grace", "Ravi", "Elena", "Kwame", "Hannah", "Diego", "Mei", "Oscar",
    "Amara", "Felix", "Ingrid", "Yusuf", "Chloe", "Bruno", "Nadia", "Hugo", "Leila",
)  # fmt: skip
RELATIONS = (
    "sister", "brother", "cousin", "neighbour", "colleague", "best friend", "aunt", "uncle",
    "manager", "roommate", "mentor", "niece",
)  # fmt: skip
CITIES = (
    "Porto", "Lisbon", "Kyoto", "Toronto", "Nairobi", "Austin", "Berlin", "Oaxaca", "Edinburgh",
    "Melbourne", "Seoul", "Valparaiso", "Reykjavik", "Marrakesh", "Denver", "Hanoi", "Krakow",
)  # fmt: skip
PLACES = (
    "the farmers market", "Lake Tahoe", "the botanical garden", "Central Park",
    "the climbing gym", "Yosemite", "the jazz club downtown", "the public library",
    "Brighton beach", "the night market", "the old harbour", "the community pool",
)  # fmt: skip
HOBBIES = (
    "rock climbing", "pottery", "salsa dancing", "birdwatching", "chess", "trail running",
    "sourdough baking", "watercolor painting", "surfing", "knitting", "photography", "kayaking",
    "woodworking", "bouldering", "choir singing",
)  # fmt: skip
JOBS = (
    "nurse", "software engineer", "baker", "architect", "high school teacher", "veterinarian",
    "electrician", "pharmacist", "graphic designer", "firefighter", "accountant",
    "marine biologist", "translator", "paramedic",
)  # fmt: skip
FOODS = (
    "ramen", "pad thai", "lasagna", "mango sticky rice", "falafel", "pierogi", "tacos al pastor",
    "butter chicken", "sushi", "shakshuka", "pho", "paella", "dumplings", "moussaka",
)  # fmt: skip
PET_KINDS = (
    "golden retriever", "tabby cat", "parrot", "rabbit", "beagle", "corgi", "hamster",
    "tortoise", "border collie", "siamese cat",
)  # fmt: skip
PET_NAMES = (
    "Biscuit", "Luna", "Pepper", "Mochi", "Ziggy", "Olive", "Rocket", "Bean", "Juniper",
    "Waffles", "Nacho", "Pixel",
)  # fmt: skip


@dataclass(frozen=True)
class Fact:
    """A memory to preload and a question whose answer it holds."""

    text: str
    question: str
    event_time: datetime | None
    importance: float


def _day(rng: random.Random) -> datetime:
    start = datetime(2019, 1, 1, 12, tzinfo=UTC)
    return start + timedelta(days=rng.randrange(7 * 365))


def _job(rng: random.Random) -> tuple[str, str, datetime | None]:
    p, rel, job, city = (rng.choice(x) for x in (PEOPLE, RELATIONS, JOBS, CITIES))
    return f"My {rel} {p} works as a {job} in {city}.", f"What does {p} do for work?", None


def _food(rng: random.Random) -> tuple[str, str, datetime | None]:
    p, food, place = rng.choice(PEOPLE), rng.choice(FOODS), rng.choice(PLACES)
    text = f"{p} loves {food}, especially the one from the stall near {place}."
    return text, f"What food does {p} love?", None


def _pet(rng: random.Random) -> tuple[str, str, datetime | None]:
    kind, name, when = rng.choice(PET_KINDS), rng.choice(PET_NAMES), _day(rng)
    text = f"I adopted a {kind} named {name} in {when:%B %Y}."
    return text, f"What is the name of my {kind}?", when


def _outing(rng: random.Random) -> tuple[str, str, datetime | None]:
    p, hobby, place, when = rng.choice(PEOPLE), rng.choice(HOBBIES), rng.choice(PLACES), _day(rng)
    text = f"{p} and I went {hobby} at {place} on {when:%B %d, %Y}."
    return text, f"When did I go {hobby} with {p}?", when


def _birthday(rng: random.Random) -> tuple[str, str, datetime | None]:
    p, rel, when = rng.choice(PEOPLE), rng.choice(RELATIONS), _day(rng)
    text = f"My {rel} {p} has a birthday on {when:%B} {when.day}."
    return text, f"When is {p}'s birthday?", None


def _move(rng: random.Random) -> tuple[str, str, datetime | None]:
    city, job, when = rng.choice(CITIES), rng.choice(JOBS), _day(rng)
    text = f"I moved to {city} in {when:%B %Y} to start a job as a {job}."
    return text, f"When did I move to {city}?", when


def _lessons(rng: random.Random) -> tuple[str, str, datetime | None]:
    hobby, rel, p, when = rng.choice(HOBBIES), rng.choice(RELATIONS), rng.choice(PEOPLE), _day(rng)
    text = f"I started {hobby} lessons in {when.year} together with my {rel} {p}."
    return text, f"Who do I take {hobby} lessons with?", when


def _trip(rng: random.Random) -> tuple[str, str, datetime | None]:
    p, city, food = rng.choice(PEOPLE), rng.choice(CITIES), rng.choice(FOODS)
    text = f"{p} is planning a trip to {city} and wants to try the local {food}."
    return text, f"Where is {p} travelling to?", None


TEMPLATES: tuple[Callable[[random.Random], tuple[str, str, datetime | None]], ...] = (
    _job, _food, _pet, _outing, _birthday, _move, _lessons, _trip,
)  # fmt: skip


def make_facts(count: int, seed: int = 7) -> list[Fact]:
    """`count` distinct facts (distinct fact keys) from the templates, deterministic per seed.

    Stops early, with fewer facts, if the templates cannot produce that many distinct ones.
    """
    rng = random.Random(seed)  # noqa: S311 (not for security)
    facts: dict[str, Fact] = {}
    tries = 0
    while len(facts) < count and tries < count * 20 + 100:
        tries += 1
        text, question, when = rng.choice(TEMPLATES)(rng)
        importance = round(rng.uniform(0.2, 0.9), 2)
        facts.setdefault(fact_key(text), Fact(text, question, when, importance))
    return list(facts.values())


def make_questions(facts: Sequence[Fact], count: int, seed: int = 11) -> list[str]:
    """Questions about random preloaded facts (or about invented ones when there are none)."""
    pool = list(facts) or make_facts(50, seed)
    rng = random.Random(seed)  # noqa: S311 (not for security)
    return [rng.choice(pool).question for _ in range(count)]


# --------------------------------------------------------------------------- database


@dataclass(frozen=True)
class Database:
    dsn: str
    name: str
    kind: str  # "embedded" or "external"


def with_database(uri: str, name: str) -> str:
    return urlunsplit(urlsplit(uri)._replace(path=f"/{name}"))


async def _admin_sql(uri: str, sql: str) -> None:
    conn = await connect(uri)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def bench_database(tmp: Path) -> AsyncIterator[Database]:
    """A fresh database `maas_bench_<random>`, dropped at the end, on MAAS_DATABASE_URL or on an
    embedded server in `tmp` (stopped at the end)."""
    external = os.environ.get("MAAS_DATABASE_URL") or None
    server: str = external if external else await asyncio.to_thread(start_embedded, tmp)
    name = f"maas_bench_{secrets.token_hex(6)}"
    try:
        await _admin_sql(server, f"CREATE DATABASE {name}")
        try:
            yield Database(
                with_database(server, name), name, "external" if external else "embedded"
            )
        finally:
            await _admin_sql(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        if not external:
            await asyncio.to_thread(stop_embedded, tmp)


PRELOAD_SQL = """
INSERT INTO maas.memories
  (user_id, text, fact_key, importance, event_time, valid_from, source_message_ids)
SELECT $1, f.text, f.key, f.importance, f.event_time, coalesce(f.event_time, now()), '{}'
FROM unnest($2::text[], $3::text[], $4::real[], $5::timestamptz[])
  AS f(text, key, importance, event_time)
"""


async def preload(dsn: str, user_id: str, facts: Sequence[Fact]) -> int:
    """Insert the facts as the user's memories in one statement; returns the row count."""
    conn = await connect(dsn)
    try:
        status: str = await conn.execute(
            PRELOAD_SQL,
            user_id,
            [f.text for f in facts],
            [fact_key(f.text) for f in facts],
            [f.importance for f in facts],
            [f.event_time for f in facts],
        )
        await conn.execute("ANALYZE maas.memories")
        return int(status.split()[-1])
    finally:
        await conn.close()


async def _median_rtt(rounds: int, once: Callable[[], Coroutine[Any, Any, float]]) -> float:
    for _ in range(10):  # warm-up
        await once()
    return percentile([await once() for _ in range(rounds)], 50)


async def notify_floor(dsn: str, rounds: int = FLOOR_ROUNDS) -> dict[str, float]:
    """Median NOTIFY -> listener round trip (and plain SELECT 1) on a bare asyncpg connection."""
    listener, sender = await connect(dsn), await connect(dsn)
    arrived: asyncio.Queue[float] = asyncio.Queue()

    def on_notify(_c: Any, _pid: int, _channel: str, _payload: str) -> None:
        arrived.put_nowait(time.perf_counter())

    async def notify_once() -> float:
        t0 = time.perf_counter()
        await sender.execute("SELECT pg_notify($1, 'x')", FLOOR_CHANNEL)
        return (await asyncio.wait_for(arrived.get(), 5.0) - t0) * 1000

    async def select_once() -> float:
        t0 = time.perf_counter()
        await sender.fetchval("SELECT 1")
        return (time.perf_counter() - t0) * 1000

    try:
        await listener.add_listener(FLOOR_CHANNEL, on_notify)
        notify = await _median_rtt(rounds, notify_once)
        select = await _median_rtt(rounds, select_once)
        return {"notify_rtt_ms": notify, "select_rtt_ms": select}
    finally:
        await listener.close()
        await sender.close()


async def server_version(dsn: str) -> str:
    conn = await connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# --------------------------------------------------------------------------- the service


@dataclass(frozen=True)
class BenchConfig:
    messages: int
    concurrency: int
    memories: int
    json_path: Path | None = None

    @property
    def workers_per_stage(self) -> int:
        return self.concurrency

    @property
    def pool_max(self) -> int:
        return min(4 * self.concurrency + 4, 80)


def bench_settings(cfg: BenchConfig, db: Database, llm_url: str, tmp: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=SecretStr(db.dsn),
        data_dir=tmp,
        admin_key=SecretStr(ADMIN_KEY),
        llm_base_url=llm_url,
        llm_api_key=SecretStr("bench"),
        llm_model="scripted",
        embedder="none",
        rate_limit_per_min=0,  # the bench measures the pipeline, not the per-key limit
        poll_s=0.5,
        pool_max=cfg.pool_max,
        analyzer_concurrency=cfg.workers_per_stage,
        assembler_concurrency=cfg.workers_per_stage,
        responder_concurrency=cfg.workers_per_stage,
        shutdown_grace_s=5.0,
        log_level="WARNING",
    )


class ServiceStopped(Exception):
    """uvicorn exited before the benchmark finished (it handles SIGINT/SIGTERM itself)."""


@dataclass(frozen=True)
class Served:
    base_url: str
    task: asyncio.Task[None]

    async def run(self, job: Coroutine[Any, Any, T]) -> T:
        """Run job, but give up if the server stops first (e.g. Ctrl-C: uvicorn takes SIGINT)."""
        work = asyncio.ensure_future(job)
        await asyncio.wait({work, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            raise ServiceStopped("the service stopped during the benchmark (Ctrl-C?)")
        return work.result()


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[Served]:
    """The app under uvicorn on a free 127.0.0.1 port (lifespan on)."""
    sock = listen_socket()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until_started(server, task)
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", task)
    finally:
        server.should_exit = True
        await task
        sock.close()


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Outcome:
    run_id: str | None
    thread_id: str | None
    latency_ms: float
    error: str | None = None
    memories_used: int = 0


class Progress:
    """`sent N/M` on stderr: rewritten in place on a terminal, a line per 10% otherwise."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total = total
        self.done = 0
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._step = 1 if self.tty else max(total // 10, 1)

    def tick(self) -> None:
        self.done += 1
        if not self.enabled or (self.done % self._step and self.done != self.total):
            return
        last = self.done == self.total
        start, end = ("\r", "\n" if last else "") if self.tty else ("", "\n")
        print(f"{start}sent {self.done}/{self.total}", end=end, file=sys.stderr, flush=True)


def _json_body(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {"error": resp.text[:200]}
    return body if isinstance(body, dict) else {"error": str(body)[:200]}


async def send_chat(http: httpx.AsyncClient, message: str, thread_id: str | None) -> Outcome:
    payload: dict[str, Any] = {"message": message}
    if thread_id is not None:
        payload["thread_id"] = thread_id
    t0 = time.perf_counter()
    try:
        resp = await http.post("/v1/chat", json=payload)
    except httpx.HTTPError as exc:
        return Outcome(None, thread_id, _ms_since(t0), f"{type(exc).__name__}: {exc}")
    latency = _ms_since(t0)
    body = _json_body(resp)
    run_id, new_thread = body.get("run_id"), body.get("thread_id") or thread_id
    if resp.status_code != 200 or body.get("status") != "COMPLETED":
        error = f"HTTP {resp.status_code} {body.get('status')}: {body.get('error')}"
        return Outcome(run_id, new_thread, latency, error)
    return Outcome(run_id, new_thread, latency, None, len(body.get("memories_used") or []))


def _ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def _client(base_url: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}", "X-MaaS-Client": "bench"},
        timeout=httpx.Timeout(180.0),
    )


async def client_loop(
    base_url: str, key: str, work: Iterator[str], progress: Progress
) -> list[Outcome]:
    """One client: takes messages from the shared iterator, a new thread every THREAD_LEN."""
    outcomes: list[Outcome] = []
    thread_id: str | None = None
    async with _client(base_url, key) as http:
        for message in work:  # single event loop: next() on a shared iterator is safe
            if len(outcomes) % THREAD_LEN == 0:
                thread_id = None
            outcome = await send_chat(http, message, thread_id)
            thread_id = outcome.thread_id
            outcomes.append(outcome)
            progress.tick()
    return outcomes


async def drive(
    base_url: str, key: str, messages: Sequence[str], concurrency: int, progress: Progress
) -> tuple[list[Outcome], float]:
    """Send all messages with `concurrency` clients; returns outcomes and wall seconds."""
    work = iter(messages)
    t0 = time.perf_counter()
    per_client = await asyncio.gather(
        *(client_loop(base_url, key, work, progress) for _ in range(concurrency))
    )
    wall = time.perf_counter() - t0
    return [o for outcomes in per_client for o in outcomes], wall


async def _bounded(limit: int, jobs: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Coroutine[Any, Any, T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def fetch_timings(
    base_url: str, key: str, run_ids: Sequence[str]
) -> dict[str, dict[str, float]]:
    """timings_ms of each run from GET /v1/runs/{id} (after the measured phase)."""
    async with _client(base_url, key) as http:

        async def one(run_id: str) -> dict[str, float]:
            resp = await http.get(f"/v1/runs/{run_id}")
            resp.raise_for_status()
            timings: dict[str, float] = resp.json()["timings_ms"]
            return timings

        found = await _bounded(8, [one(r) for r in run_ids])
        return dict(zip(run_ids, found, strict=True))


async def create_bench_user(base_url: str) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
        resp = await http.post(
            "/v1/admin/users",
            json={"name": "bench"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        resp.raise_for_status()
        body = resp.json()
        return str(body["user_id"]), str(body["api_key"])


# --------------------------------------------------------------------------- the run


@dataclass
class Report:
    cfg: BenchConfig
    machine: dict[str, Any]
    memories: int
    wall_s: float
    outcomes: list[Outcome]
    timings: dict[str, dict[str, float]]
    floor: dict[str, float]
    warmup_failures: int = 0
    stages: dict[str, dict[str, float]] = field(init=False)
    chat: dict[str, float] = field(init=False)
    memories_used: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        done = [o for o in self.outcomes if o.error is None]
        runs = list(self.timings.values())
        self.chat = summarize([o.latency_ms for o in done])
        self.stages = {s: summarize([t[s] for t in runs if s in t]) for s in STAGES}
        self.stages["handoffs"] = summarize([_handoffs(t) for t in runs if "total" in t])
        self.stages["api"] = summarize([d for o in done if (d := self._api_ms(o)) is not None])
        self.memories_used = summarize([o.memories_used for o in done])

    def _api_ms(self, o: Outcome) -> float | None:
        """Client latency minus the run's server total: HTTP, submit, wake-up and reply."""
        total = self.timings.get(o.run_id or "", {}).get("total")
        return None if total is None else o.latency_ms - total

    @property
    def completed(self) -> int:
        return sum(o.error is None for o in self.outcomes)

    @property
    def failures(self) -> int:
        return len(self.outcomes) - self.completed

    @property
    def messages_per_s(self) -> float:
        return self.completed / self.wall_s if self.wall_s > 0 else 0.0

    def errors(self, limit: int = 5) -> list[tuple[str, int]]:
        return Counter(o.error for o in self.outcomes if o.error).most_common(limit)


def _handoffs(t: dict[str, float]) -> float:
    """Time between stages (waiting in the next queue): total minus the four stage spans."""
    return t["total"] - sum(t.get(s, 0.0) for s in STAGES[:-1])


def machine_info(db: Database, pg_version: str) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "event_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "postgres": pg_version,
        "database": db.kind,
    }


async def measure(cfg: BenchConfig, base_url: str, db: Database) -> Report:
    user_id, key = await create_bench_user(base_url)
    facts = make_facts(cfg.memories)
    loaded = await preload(db.dsn, user_id, facts)
    questions = make_questions(facts, WARMUP + cfg.messages)
    warm, _ = await drive(
        base_url, key, questions[:WARMUP], cfg.concurrency, Progress(WARMUP, enabled=False)
    )
    if warm and all(o.error for o in warm):
        raise RuntimeError(f"every warm-up message failed, e.g. {warm[0].error}")
    progress = Progress(cfg.messages)
    outcomes, wall = await drive(base_url, key, questions[WARMUP:], cfg.concurrency, progress)
    run_ids = [o.run_id for o in outcomes if o.error is None and o.run_id]
    timings = await fetch_timings(base_url, key, run_ids)
    floor = await notify_floor(db.dsn)
    machine = machine_info(db, await server_version(db.dsn))
    warm_failed = sum(o.error is not None for o in warm)
    return Report(cfg, machine, loaded, wall, outcomes, timings, floor, warm_failed)


async def bench(cfg: BenchConfig) -> Report:
    with (
        tempfile.TemporaryDirectory(prefix="maas-bench-", ignore_cleanup_errors=True) as tmp,
        ScriptedLLM() as llm,
    ):
        async with bench_database(Path(tmp)) as db:
            settings = bench_settings(cfg, db, llm.base_url, Path(tmp))
            async with serving(create_app(settings)) as served:
                return await served.run(measure(cfg, served.base_url, db))


# --------------------------------------------------------------------------- output


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def _row(label: str, s: dict[str, float]) -> str:
    cells = [_fmt(s[k]) for k in ("mean", "p50", "p95", "p99", "max")]
    return f"  {label:<22}{int(s['n']):>6}" + "".join(f"{c:>10}" for c in cells)


STAGE_LABELS = {
    "queue": "queue (NEW wait)",
    "analyzer": "analyzer",
    "assembler": "assembler",
    "responder": "responder",
    "handoffs": "stage handoffs",
    "total": "total (server)",
    "api": "HTTP + submit + reply",
}


def render(r: Report) -> str:
    m, cfg = r.machine, r.cfg
    header = f"  {'latency (ms)':<22}{'n':>6}" + "".join(
        f"{h:>10}" for h in ("mean", "p50", "p95", "p99", "max")
    )
    lines = [
        "MaaS pipeline benchmark (POST /v1/chat, real HTTP entrypoint)",
        f"  machine      {m['cpu_count']} CPUs, {m['platform']}, Python {m['python']}"
        f" ({m['event_loop']})",
        f"  database     {m['database']} Postgres {m['postgres']}, fresh database",
        f"  LLM          {LLM_MODE}",
        f"  memories     {r.memories} preloaded for the bench user; "
        f"{_fmt(r.memories_used['mean'])} used per answer (mean)",
        f"  load         {cfg.messages} messages, {cfg.concurrency} concurrent clients"
        f" (+{WARMUP} warm-up), new thread every {THREAD_LEN} per client",
        f"  service      {cfg.workers_per_stage} workers per stage, pool max {cfg.pool_max}, "
        "client + service + LLM in one process",
        "",
        header,
        *(_row(STAGE_LABELS[s], r.stages[s]) for s in (*STAGES[:-1], "handoffs", "total")),
        _row(STAGE_LABELS["api"], r.stages["api"]),
        _row("chat (client e2e)", r.chat),
        "",
        f"  throughput   {r.messages_per_s:.1f} messages/s "
        f"({r.completed} completed in {r.wall_s:.2f} s)",
        f"  failures     {r.failures}"
        + (f" (+{r.warmup_failures} in warm-up)" if r.warmup_failures else ""),
        *(f"               {n} x {e}" for e, n in r.errors()),
        f"  floor        NOTIFY -> LISTEN round trip {r.floor['notify_rtt_ms']:.3f} ms, "
        f"SELECT 1 {r.floor['select_rtt_ms']:.3f} ms (median of {FLOOR_ROUNDS}, same database)",
    ]
    return "\n".join(lines)


def _pcts(s: dict[str, float]) -> dict[str, float | None]:
    return {f"p{p}": _num(s[f"p{p}"]) for p in PCTS} | {"mean": _num(s["mean"])}


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def to_json(r: Report) -> dict[str, Any]:
    return {
        "chat_latency_ms": _pcts(r.chat),
        "stages_ms": {name: _pcts(s) for name, s in r.stages.items()},
        "messages_per_s": round(r.messages_per_s, 2),
        "completed": r.completed,
        "failures": r.failures,
        "wall_s": round(r.wall_s, 3),
        "memories": r.memories,
        "memories_used_per_answer": _num(r.memories_used["mean"]),
        "messages": r.cfg.messages,
        "concurrency": r.cfg.concurrency,
        "workers_per_stage": r.cfg.workers_per_stage,
        "llm": LLM_MODE,
        "floor": {k: round(v, 4) for k, v in r.floor.items()},
        "machine": r.machine,
    }


# --------------------------------------------------------------------------- entrypoint


def _runner() -> asyncio.Runner:
    """uvloop when installed, like `maas serve` (uvicorn's loop="auto")."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def _config(args: argparse.Namespace) -> BenchConfig:
    if args.messages < 1 or args.concurrency < 1 or args.memories < 0:
        raise ValueError("--messages and --concurrency must be >= 1, --memories >= 0")
    return BenchConfig(args.messages, args.concurrency, args.memories, args.json)


def run_served(label: str, work: Coroutine[Any, Any, R]) -> R | None:
    """Run a benchmark coroutine beside the in-process service; None if the service stopped."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        with _runner() as runner:
            return runner.run(work)
    except ServiceStopped as exc:
        print(f"\n{label}: {exc}", file=sys.stderr)
        return None


def publish(text: str, data: dict[str, Any], json_path: Path | None) -> None:
    """Print the table and, when asked, write the same figures as JSON."""
    print(text, flush=True)
    if json_path is not None:
        json_path.write_text(json.dumps(data, indent=2) + "\n")
        print(f"  json         {json_path}")


def run_bench(args: argparse.Namespace) -> int:
    """`maas bench pipeline`: prints the table (and writes --json); 1 if any message failed."""
    try:
        cfg = _config(args)
    except ValueError as exc:
        print(f"maas bench: {exc}", file=sys.stderr)
        return 2
    report = run_served("maas bench", bench(cfg))
    if report is None:
        return 130
    publish(render(report), to_json(report), cfg.json_path)
    return 0 if report.failures == 0 else 1
