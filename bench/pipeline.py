"""The performance harness behind `maas bench pipeline` (#9).

One command, offline mode (the in-process extractive model: a zero-latency "LLM" with no HTTP
hop), `maas serve` as its own process on an embedded data dir, and in the same run:

- freshness: a fact told in one thread until /v1/context from another packs it (no close);
- cold start of `maas serve` on the existing data dir until /health is ok (vs a bare Postgres
  start on the same dir);
- users preloaded with each --scale of memories (bulk, see preload.py);
- the floor: a bare asyncpg NOTIFY round trip, and the assembler's search SQL run bare on the
  same tables with the same arguments;
- /v1/context latency at every scale; POST /v1/chat latency and per-stage spans at 10k (or the
  scale nearest it); messages/s with many dialogs over many users; archivist turns/s;
  erasing the 10k user; peak RSS of the service process.

Latencies and the load are sent with a minimal keep-alive HTTP client (lean_http.py): httpx
costs ~2 ms of CPU per request on the cores the service runs on. A sample of chats sent with httpx,
spread through the same sequence, is reported beside them, and at load the client's CPU per message.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.chat import THREAD_LEN, Outcome, chat_outcome, ms_since, send_chat
from bench.corpus import make_facts, make_questions
from bench.database import server_version
from bench.floor import notify_floor
from bench.harness import ADMIN_KEY
from bench.lean_http import LeanClient, LeanHTTPError
from bench.preload import SESSION_TURNS, Loaded, preload_history
from bench.queries import bq
from bench.serve_proc import (
    ServeProcess,
    cpu_seconds,
    postgres_cpu_seconds,
    serve_env,
    start_serve,
)
from maas.agents.assembler import search_terms
from maas.db.embedded import start_embedded, stop_embedded
from maas.db.pool import GENERIC_PLANS, connect
from maas.db.queries import q
from maas.llm.offline import entities, keywords
from maas.llm.types import Analysis
from maas.memory.search import statement_args
from maas.params import ParamSet, defaults

WARMUP = 10
SPEAKERS = ("Caroline", "Melanie")
CHITCHAT = (
    "Haha, that sounds like so much fun!", "Wow, I had no idea.", "How are you doing lately?",
    "That's wonderful news, congratulations!", "Oh no, I'm sorry to hear that.",
    "What did you think of it?", "Same here, honestly.", "Tell me more about that.",
)  # fmt: skip


@dataclass(frozen=True)
class PerfConfig:
    scales: tuple[int, ...] = (1000, 10000, 100000)
    messages: int = 200  # sequential chat messages at the chat scale
    queries: int = 100  # /v1/context queries (and bare searches) per scale
    dialogs: int = 50  # concurrent dialogs of the throughput phase
    users: int = 10  # over this many users (each with load_memories)
    load_memories: int = 1000
    load_s: float = 20.0
    turns: int = 1000  # imported turns the archivist ingests
    json_path: Path | None = None
    httpx_messages: int = 50  # chat messages sent with httpx among the others, for comparison
    fresh: int = 30  # facts told in one thread and looked for from another (freshness)

    @property
    def chat_scale(self) -> int:
        return min(self.scales, key=lambda n: (abs(n - 10_000), n))


@dataclass
class Results:
    machine: dict[str, Any] = field(default_factory=dict)
    first_start_s: float = 0.0
    cold_start_s: float = 0.0
    bare_pg_start_s: float = 0.0
    notify: dict[str, float] = field(default_factory=dict)
    loads: dict[int, Loaded] = field(default_factory=dict)
    bare_search: dict[int, list[float]] = field(default_factory=dict)
    context: dict[int, list[float]] = field(default_factory=dict)
    chat: list[Outcome] = field(default_factory=list)
    chat_httpx: list[Outcome] = field(default_factory=list)  # the same kind of chat, via httpx
    timings: list[dict[str, float]] = field(default_factory=list)
    stage_split_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # work / write
    load: list[Outcome] = field(default_factory=list)
    load_wall_s: float = 0.0
    # CPU seconds at load: the service, Postgres, and the load client (this process)
    load_cpu_s: dict[str, float] = field(default_factory=dict)
    archivist: tuple[int, int, float] = (0, 0, 0.0)  # turns, memories made, seconds
    # ms from a chat's answer (a fact told in one thread) until /v1/context from another thread
    # packs the memory made of it: per-turn archiving, without a close
    freshness_ms: list[float] = field(default_factory=list)
    erase_s: float = 0.0
    erased_memories: int = 0
    rss_mb: float = 0.0
    wall_s: float = 0.0


class Progress:
    """Phase lines on stderr with the time since the start."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.t0:7.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class User:
    user_id: str
    key: str


def _headers(key: str | None) -> dict[str, str]:
    headers = {"X-MaaS-Client": "bench"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def client(base_url: str, key: str | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url, headers=_headers(key), timeout=httpx.Timeout(120.0))


def lean(base_url: str, key: str) -> LeanClient:
    return LeanClient(base_url, _headers(key))


async def lean_chat(http: LeanClient, message: str, thread_id: str | None) -> Outcome:
    """send_chat (bench.chat) with the lean client."""
    payload: dict[str, Any] = {"message": message}
    if thread_id is not None:
        payload["thread_id"] = thread_id
    t0 = time.perf_counter()
    try:
        status, body = await http.post("/v1/chat", payload)
    except LeanHTTPError as exc:
        return Outcome(None, thread_id, ms_since(t0), str(exc))
    reply = body if isinstance(body, dict) else {"error": str(body)[:200]}
    return chat_outcome(status, reply, thread_id, ms_since(t0))


async def new_user(base_url: str, name: str) -> User:
    async with client(base_url, ADMIN_KEY) as http:
        resp = await http.post("/v1/admin/users", json={"name": name})
        resp.raise_for_status()
        body = resp.json()
    return User(str(body["user_id"]), str(body["api_key"]))


# --------------------------------------------------------------------------- phases


async def start_phase(res: Results, data_dir: Path, say: Progress) -> ServeProcess:
    """First start (initdb + migrations, not measured), stop, bare Postgres start, cold start."""
    env = serve_env()
    served, res.first_start_s = await start_serve(data_dir, env)
    say(f"first start (initdb + migrations) {res.first_start_s:.2f} s; stopping")
    await served.stop()
    t0 = time.perf_counter()
    await asyncio.to_thread(start_embedded, data_dir)
    res.bare_pg_start_s = time.perf_counter() - t0
    await asyncio.to_thread(stop_embedded, data_dir)
    served, res.cold_start_s = await start_serve(data_dir, env)
    say(f"cold start {res.cold_start_s:.2f} s (bare Postgres start {res.bare_pg_start_s:.2f} s)")
    return served


async def preload_user(
    base_url: str, dsn: str, name: str, count: int, seed: int
) -> tuple[User, Loaded, list[str]]:
    """A user with `count` memories and questions about them."""
    user = await new_user(base_url, name)
    facts = make_facts(count + count // 6 + 10, seed)  # ~10% only fill a slot: no turn memory
    loaded = await preload_history(dsn, user.user_id, [f.text for f in facts], seed, count)
    questions = make_questions(facts[:count], 2_000, seed + 1)
    return user, loaded, questions


def search_args(user_id: str, question: str, params: ParamSet) -> list[Any]:
    """The assembler's search_memories arguments for an offline analysis of `question`."""
    found = keywords(question, int(params["llm.analyzer_max_keywords"]))
    terms = search_terms(Analysis(keywords=found, entities=entities(question)))
    return list(statement_args(user_id, question, terms, None, params))


async def bare_search(dsn: str, user_id: str, questions: Sequence[str]) -> list[float]:
    """The search SQL alone on one connection (prepared once), as the floor of /v1/context: a
    session like the service's search pool (generic plans; the default plan mode planned the
    search anew on each call, and its planning time was counted in the floor)."""
    conn = await connect(dsn, settings=GENERIC_PLANS)
    params = defaults()
    try:
        stmt = await conn.prepare(q("search_memories"))
        out = []
        for i, question in enumerate(questions):
            t0 = time.perf_counter()
            await stmt.fetch(*search_args(user_id, question, params))
            if i >= WARMUP:
                out.append(ms_since(t0))
        return out
    finally:
        await conn.close()


async def context_latency(base_url: str, key: str, questions: Sequence[str]) -> list[float]:
    out = []
    http = lean(base_url, key)
    try:
        for i, question in enumerate(questions):
            t0 = time.perf_counter()
            status, body = await http.post("/v1/context", {"query": question})
            elapsed = ms_since(t0)
            if status != 200 or not isinstance(body, dict) or body.get("status") != "READY":
                raise RuntimeError(f"/v1/context failed: {status} {str(body)[:200]}")
            if i >= WARMUP:
                out.append(elapsed)
    finally:
        await http.aclose()
    return out


@dataclass
class Chatter:
    """One chat client sending one message at a time, a new thread every THREAD_LEN messages."""

    http: httpx.AsyncClient | LeanClient
    out: list[Outcome] = field(default_factory=list)
    thread_id: str | None = None
    sent: int = 0

    async def send(self, message: str) -> None:
        if self.sent % THREAD_LEN == 0:
            self.thread_id = None
        if isinstance(self.http, LeanClient):
            outcome = await lean_chat(self.http, message, self.thread_id)
        else:
            outcome = await send_chat(self.http, message, self.thread_id)
        self.thread_id = outcome.thread_id
        self.out.append(outcome)
        self.sent += 1


async def interleaved(main: Chatter, other: Chatter, messages: Sequence[str], n_other: int) -> None:
    """`messages` in turn, n_other of them spread evenly through the sequence sent by `other`:
    both clients see the service in the same state (caches, tables) at the same moments."""
    total = len(messages)
    for i, message in enumerate(messages):
        spread = (i + 1) * n_other // total > i * n_other // total if total else False
        await (other if spread else main).send(message)


STAGE_SUMS = re.compile(r'^maas_stage(_commit)?_seconds_(sum|count)\{stage="(\w+)"\} (\S+)$', re.M)


async def stage_sums(http: httpx.AsyncClient) -> dict[tuple[str, str, str], float]:
    """(stage, "all"|"commit", "sum"|"count") from the service's /metrics histograms."""
    text = (await http.get("/metrics")).text
    return {
        (stage, "commit" if commit else "all", kind): float(v)
        for commit, kind, stage, v in STAGE_SUMS.findall(text)
    }


def split_ms(
    before: dict[tuple[str, str, str], float], after: dict[tuple[str, str, str], float]
) -> dict[str, dict[str, float]]:
    """Mean work (claim → commit begins) and write (the commit) per stage between two scrapes."""
    out = {}
    for stage in ("analyzer", "assembler", "responder"):
        d = {k: after.get((stage, *k), 0.0) - before.get((stage, *k), 0.0)
             for k in (("all", "sum"), ("all", "count"), ("commit", "sum"))}  # fmt: skip
        n = d[("all", "count")]
        if n:
            write = d[("commit", "sum")] / n * 1000
            out[stage] = {"work": d[("all", "sum")] / n * 1000 - write, "write": write}
    return out


async def chat_latency(
    base_url: str, key: str, questions: Sequence[str], n_httpx: int
) -> tuple[Chatter, Chatter, list[dict[str, float]], dict[str, dict[str, float]]]:
    """The chat sequence from the lean client, with n_httpx more messages from httpx (what a
    Python client built on it sees) spread through it; per-stage spans of the lean client's."""
    stopwatch = lean(base_url, key)
    async with client(base_url, key) as http:
        main, other = Chatter(stopwatch), Chatter(http)
        try:
            for message in questions[:WARMUP]:
                await main.send(message)
                await other.send(message)
            main.out.clear()
            other.out.clear()
            before = await stage_sums(http)
            await interleaved(main, other, questions[2 * WARMUP :], n_httpx)
            split = split_ms(before, await stage_sums(http))
        finally:
            await stopwatch.aclose()
        timings = []
        for o in main.out:
            if o.error is None and o.run_id:
                resp = await http.get(f"/v1/runs/{o.run_id}")
                timings.append(dict(resp.json()["timings_ms"]))
    return main, other, timings, split


async def dialog(
    http: LeanClient, questions: Sequence[str], until: float, out: list[Outcome]
) -> None:
    chatter = Chatter(http, out)  # the dialogs share one list of outcomes
    while time.monotonic() < until:
        await chatter.send(questions[chatter.sent % len(questions)])


async def throughput(
    base_url: str, users: Sequence[tuple[User, list[str]]], dialogs: int, seconds: float
) -> tuple[list[Outcome], float]:
    """`dialogs` concurrent dialogs spread over the users, each a chat client with its own
    connection, for `seconds`."""
    clients = [lean(base_url, users[n % len(users)][0].key) for n in range(dialogs)]
    out: list[Outcome] = []
    try:
        t0 = time.monotonic()
        until = t0 + seconds
        await asyncio.gather(
            *(dialog(clients[n], users[n % len(users)][1][n:], until, out) for n in range(dialogs))
        )
        return out, time.monotonic() - t0
    finally:
        for c in clients:
            await c.aclose()


def dialog_turns(count: int, seed: int) -> list[dict[str, Any]]:
    """A two-person dialog: mostly facts about their lives, some small talk and questions."""
    facts = make_facts(count, seed)
    turns = []
    for i, fact in enumerate(facts):
        text = fact.text if i % 4 else f"{CHITCHAT[i % len(CHITCHAT)]} {fact.text}"
        if i % 7 == 3:
            text = CHITCHAT[i % len(CHITCHAT)]
        turns.append({"role": "user" if i % 2 == 0 else "other", "speaker": SPEAKERS[i % 2],
                      "text": text})  # fmt: skip
    return turns


async def import_threads(http: httpx.AsyncClient, turns: list[dict[str, Any]]) -> list[str]:
    threads = []
    for start in range(0, len(turns), SESSION_TURNS):
        resp = await http.post("/v1/threads", json={"title": f"dialog {start}"})
        thread_id = resp.json()["thread_id"]
        batch = turns[start : start + SESSION_TURNS]
        (
            await http.post(f"/v1/threads/{thread_id}/messages", json={"messages": batch})
        ).raise_for_status()
        threads.append(thread_id)
    return threads


async def archivist_rate(base_url: str, dsn: str, turns: int) -> tuple[int, int, float]:
    """Import `turns` turns, close every thread at once, time until every archive job is done."""
    user = await new_user(base_url, "archivist")
    async with client(base_url, user.key) as http:
        threads = await import_threads(http, dialog_turns(turns, 31))
        t0 = time.perf_counter()
        await asyncio.gather(*(http.post(f"/v1/threads/{t}/close") for t in threads))
        conn = await connect(dsn)
        try:
            # The jobs run in the service's process: poll their rows.
            while await conn.fetchval(bq("bench_archive_pending"), user.user_id):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            seconds = time.perf_counter() - t0
            done = await conn.fetchrow(bq("bench_archive_done"), user.user_id)
        finally:
            await conn.close()
    return turns, int(done["memories"]), seconds


FRESH_POLL_S = 0.02


async def freshness(base_url: str, samples: int) -> list[float]:
    """For each sample: a fact told in a thread of its own; then /v1/context (no thread) asks
    about it every FRESH_POLL_S until the memory made of it is packed. Each sample's fact is made
    of invented words of its own (a fixed template would make them near duplicates of each
    other, merged into the first), so only its own memory can answer it."""
    user = await new_user(base_url, "freshness")
    words = invented_words(samples * 3, seed=17)
    out: list[float] = []
    async with client(base_url, user.key) as http:
        for i in range(samples):
            name, town, pet = words[3 * i : 3 * i + 3]
            fact = f"My friend {name} lives in {town} with a parrot called {pet}."
            told = await http.post("/v1/chat", json={"message": fact})
            told.raise_for_status()
            t0 = time.perf_counter()
            while not await _packs(http, f"Where does my friend {name} live?", name):
                if time.perf_counter() - t0 > 30:
                    raise RuntimeError(f"fact {i} not found in 30 s: per-turn archiving is off?")
                await asyncio.sleep(FRESH_POLL_S)
            out.append(ms_since(t0))
    return out


def invented_words(count: int, seed: int) -> list[str]:
    """Capitalised nonsense words, distinct from each other and from any real word."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < count:
        out.add("".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(4)))
    return sorted(w.capitalize() for w in out)


async def _packs(http: httpx.AsyncClient, question: str, name: str) -> bool:
    reply = await http.post("/v1/context", json={"query": question})
    reply.raise_for_status()
    return any(name in m["text"] and m["used"] for m in reply.json()["memories"])


async def erase(base_url: str, key: str) -> float:
    async with client(base_url, key) as http:
        t0 = time.perf_counter()
        resp = await http.delete("/v1/users/me")
        seconds = time.perf_counter() - t0
        resp.raise_for_status()
    return seconds


# --------------------------------------------------------------------------- the run


async def measure_scales(
    res: Results, cfg: PerfConfig, served: ServeProcess, dsn: str, say: Progress
) -> User:
    """Preload each scale, then its bare searches and /v1/context; returns the chat-scale user."""
    chat_user: User | None = None
    n = WARMUP + cfg.queries
    for i, count in enumerate(cfg.scales):
        user, res.loads[count], questions = await preload_user(
            served.base_url, dsn, f"scale-{count}", count, 100 + i
        )
        say(f"preloaded {res.loads[count].memories} memories in {res.loads[count].seconds:.1f} s")
        res.bare_search[count] = await bare_search(dsn, user.user_id, questions[:n])
        res.context[count] = await context_latency(served.base_url, user.key, questions[:n])
        say(f"  {count}: /v1/context and bare search, {cfg.queries} queries each")
        if count == cfg.chat_scale:
            chat_user = user
            asked = questions[n : n + 2 * WARMUP + cfg.messages + cfg.httpx_messages]
            main, other, res.timings, res.stage_split_ms = await chat_latency(
                served.base_url, user.key, asked, cfg.httpx_messages
            )
            res.chat, res.chat_httpx = main.out, other.out
            say(f"  {count}: {cfg.messages} chat messages one at a time "
                f"(and {cfg.httpx_messages} with httpx among them)")  # fmt: skip
    assert chat_user is not None
    return chat_user


async def measure_load(
    res: Results, cfg: PerfConfig, served: ServeProcess, dsn: str, say: Progress
) -> None:
    """Throughput with CPU seconds of the service and of Postgres: which one is the limit."""
    users = []
    for i in range(cfg.users):
        user, _, questions = await preload_user(
            served.base_url, dsn, f"load-{i}", cfg.load_memories, 500 + i
        )
        users.append((user, questions))
    say(f"{cfg.users} load users with {cfg.load_memories} memories each; "
        f"{cfg.dialogs} dialogs for {cfg.load_s:g} s")  # fmt: skip
    before = cpu_seconds(served.pid), postgres_cpu_seconds(served.data_dir), time.process_time()
    res.load, res.load_wall_s = await throughput(served.base_url, users, cfg.dialogs, cfg.load_s)
    res.load_cpu_s = {
        "service": cpu_seconds(served.pid) - before[0],
        "postgres": postgres_cpu_seconds(served.data_dir) - before[1],
        "client": time.process_time() - before[2],
    }


async def run_phases(res: Results, cfg: PerfConfig, data_dir: Path, say: Progress) -> None:
    served = await start_phase(res, data_dir, say)
    dsn = await asyncio.to_thread(start_embedded, data_dir)  # the same server, shared
    try:
        say(f"service pid {served.pid} at {served.base_url}")
        res.notify = await notify_floor(dsn)
        chat_user = await measure_scales(res, cfg, served, dsn, say)
        await measure_load(res, cfg, served, dsn, say)
        res.archivist = await archivist_rate(served.base_url, dsn, cfg.turns)
        say(f"archivist: {res.archivist[0]} turns in {res.archivist[2]:.2f} s")
        res.freshness_ms = await freshness(served.base_url, cfg.fresh)
        say(f"freshness: {cfg.fresh} facts told in one thread, found from another")
        res.erased_memories = res.loads[cfg.chat_scale].memories
        res.erase_s = await erase(served.base_url, chat_user.key)
        res.rss_mb = served.peak_rss_mb()
        res.machine = await machine(dsn)
    except BaseException:
        if served.proc.returncode is not None:  # the service died: say why before the tmp goes
            tail = served.log_path.read_text(errors="replace")[-3000:]
            say(f"maas serve exited with {served.proc.returncode}; its log ends:\n{tail}")
        raise
    finally:
        await served.stop()
        await asyncio.to_thread(stop_embedded, data_dir)


async def machine(dsn: str) -> dict[str, Any]:
    version = await server_version(dsn)
    return {
        "cpu_count": os.cpu_count(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgres": version,
        "database": "embedded (pgserver), unix socket",
    }


async def run_perf(cfg: PerfConfig) -> Results:
    say = Progress()
    res = Results()
    with tempfile.TemporaryDirectory(prefix="maas-perf-", ignore_cleanup_errors=True) as tmp:
        await run_phases(res, cfg, Path(tmp) / "data", say)
    res.wall_s = time.perf_counter() - say.t0
    say(f"done in {res.wall_s:.0f} s")
    return res
