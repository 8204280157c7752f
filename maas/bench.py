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
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import uvicorn
from fastapi import FastAPI

from maas.benchmarks.harness import listen_socket, until_started
from maas.db.embedded import start_embedded, stop_embedded
from maas.db.pool import connect
from maas.memory.store import fact_key

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

STAGES = ("queue", "analyzer", "assembler", "responder", "total")
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
    return chat_outcome(resp.status_code, _json_body(resp), thread_id, _ms_since(t0))


def chat_outcome(status: int, body: dict[str, Any], thread_id: str | None, ms: float) -> Outcome:
    """A /v1/chat reply as an Outcome: an error unless 200 and COMPLETED."""
    run_id, new_thread = body.get("run_id"), body.get("thread_id") or thread_id
    if status != 200 or body.get("status") != "COMPLETED":
        error = f"HTTP {status} {body.get('status')}: {body.get('error')}"
        return Outcome(run_id, new_thread, ms, error)
    return Outcome(run_id, new_thread, ms, None, len(body.get("memories_used") or []))


def _ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def _client(base_url: str, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {key}", "X-MaaS-Client": "bench"},
        timeout=httpx.Timeout(180.0),
    )


# --------------------------------------------------------------------------- the run


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


# --------------------------------------------------------------------------- output


# --------------------------------------------------------------------------- entrypoint


def _runner() -> asyncio.Runner:
    """uvloop when installed, like `maas serve` (uvicorn's loop="auto")."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


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
    """`maas bench pipeline`: the performance harness (maas/benchmarks/perf.py)."""
    from maas.benchmarks.perf import PerfConfig, run

    try:
        scales = tuple(int(s) for s in args.scale.split(",") if s.strip())
        if not scales or min(scales) < 1 or args.messages < 1 or args.queries < 1:
            raise ValueError("--scale, --messages and --queries must be >= 1")
    except ValueError as exc:
        print(f"maas bench pipeline: {exc}", file=sys.stderr)
        return 2
    cfg = PerfConfig(
        scales, args.messages, args.queries, args.dialogs, args.users, args.load_memories,
        args.load_seconds, args.turns, args.json, args.httpx_messages,
    )  # fmt: skip
    return run(cfg)
