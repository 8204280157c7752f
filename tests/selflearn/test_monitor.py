"""The automatic-rollback monitor: the always-valid test, simulated days of traffic (A/A, at
the margin, a real degradation, and proof that the check fails for a broken rule), one tenant
who cannot trigger it, the concurrent control in the parameter source, and the monitor on real
Postgres and through the real app (live chats, emulator batches, many looks)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from scipy import integrate
from scipy.special import log_ndtr

from maas.app import create_app
from maas.db.pool import connect, create_pool
from maas.params import ParamSet, defaults
from selflearn import tuner
from selflearn.extension import extend
from selflearn.paramsource import SourceState, control_for
from selflearn.settings import SelflearnSettings
from selflearn.teacher import guardrails, sequential, stats
from selflearn.teacher import simulate_monitor as sm
from selflearn.teacher.guardrails import Config, Threads, evaluate
from tests.conftest import ADMIN_KEY, Api
from tests.conftest import test_settings as settings_for
from tests.helpers import close_and_archive, eventually

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PERSON = tuner.Change("person", "ada", "manual test")


# ---- the always-valid statistic ------------------------------------------------------------


@pytest.mark.parametrize("var", [0.01, 1.0, 40.0])
def test_the_mixture_has_mean_one_at_the_null_and_grows_with_harm(var: float) -> None:
    """E[Λ] = 1 when θ = 0 (a martingale's mean: Ville's inequality then bounds P(Λ ≥ 1/α)),
    below 1 when the truth is on the safe side."""
    tau = 0.5

    def mean_at(theta: float) -> float:
        def f(x: float) -> float:
            log_lr = sequential.log_mixture(np.array(x), np.array(var), tau)
            return float(np.exp(log_lr - (x - theta) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var))

        sd = np.sqrt(var + tau**2)  # Λ × the null density spreads like N(0, V + τ²)
        return float(integrate.quad(f, theta - 12 * sd, theta + 12 * sd, limit=400)[0])

    assert mean_at(0.0) == pytest.approx(1.0, rel=1e-6)
    assert mean_at(0.5 * np.sqrt(var)) < 1.0
    harms = sequential.log_mixture(np.array([-3.0, -1.0, 0.0, 1.0]), np.array([var] * 4), tau)
    assert list(harms) == sorted(harms, reverse=True)
    certain = sequential.log_mixture(np.array([-0.1, 0.1]), np.array([0.0, 0.0]), tau)
    assert list(certain) == [np.inf, -np.inf]


# ---- simulated days through the monitor's decision code ------------------------------------

BUSY = {"users": 100, "threads_per_user_day": 40, "period_min": 20}  # evidence within hours


def _fixed_sample(theta: Any, var: Any, tau: float) -> Any:
    """A fixed-sample one-sided z test's p as log(1/p): peeking with it is the broken rule."""
    theta, var = np.asarray(theta, dtype=float), np.asarray(var, dtype=float)
    return -log_ndtr(theta / np.sqrt(np.where(var > 0, var, 1e-300)))


def test_monitoring_aa_for_a_day_rolls_nothing_back() -> None:
    result = sm.run(40, 1, sm.Traffic(period_min=10), Config(), seed=7)
    assert result["per_day"][0]["rolled_back"] == 0.0


def test_at_the_margin_the_rate_stays_under_alpha_and_a_broken_rule_exceeds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The active arm worse by exactly the margin (the null's boundary): the always-valid rule
    rolls back at most α of the versions over a day of looks; a fixed-sample test at every look
    without Holm or persistence (the old monitor's statistics) rolls back far more."""
    traffic = sm.Traffic(**BUSY, harm={"found_anything_rate": -0.10})  # type: ignore[arg-type]
    sound = sm.run(40, 1, traffic, Config(), seed=11)["per_day"][0]
    assert sound["rolled_back"] <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 40)
    monkeypatch.setattr(sequential, "log_mixture", _fixed_sample)
    monkeypatch.setattr(stats, "holm", lambda p: np.asarray(p, dtype=float))
    broken = sm.run(40, 1, traffic, Config(persist=1), seed=11)["per_day"][0]
    assert broken["rolled_back"] > 0.05 + 3 * np.sqrt(0.05 * 0.95 / 40), broken


@pytest.mark.parametrize("harm", [{"latency_ms": 2000.0}, {"found_anything_rate": -0.4}])
def test_a_real_degradation_rolls_back(harm: dict[str, float]) -> None:
    traffic = sm.Traffic(**BUSY, harm=harm)  # type: ignore[arg-type]
    result = sm.run(20, 1, traffic, Config(), seed=5)
    assert result["per_day"][0]["rolled_back"] == 1.0
    assert result["median_hours"] < 6


# ---- one tenant cannot trigger it (issue #20) ------------------------------------------------


def _threads(per_user: list[tuple[int, int, float, float]]) -> Threads:
    """(active threads, control threads, active found, control found) per user."""
    control, user, found = [], [], []
    for u, (na, nc, fa, fc) in enumerate(per_user):
        control += [False] * na + [True] * nc
        user += [u] * (na + nc)
        found += [fa] * na + [fc] * nc
    n = len(control)
    values = {"failure_rate": np.zeros(n), "found_anything_rate": np.array(found),
              "latency_ms": np.full(n, 300.0), "tokens_per_run": np.full(n, 200.0)}  # fmt: skip
    noise = np.random.default_rng(0).normal(0, 0.05, n)
    values["found_anything_rate"] = (values["found_anything_rate"] + noise).clip(0, 1)
    return Threads(np.array(control), np.array(user), values)


def test_one_tenant_cannot_trigger_a_rollback_but_the_same_harm_everywhere_does() -> None:
    """A tenant who reads each thread's arm (runs report their parameter version) and asks
    only hopeless questions in the active arm's threads: no flag, however many threads. The same
    drop spread over every user is flagged."""
    cfg = Config(min_threads=10, min_users=5)
    honest = [(12, 4, 0.85, 0.85)] * 8
    attacker = [(400, 40, 0.0, 1.0)]
    look = evaluate(_threads(honest + attacker), cfg=cfg)
    assert look.enough and look.threads == (496, 72)
    found = next(r for r in look.rules if r.rule.metric == "found_anything_rate")
    assert found.active < found.control - 0.5  # the raw means look like a disaster …
    assert not look.flagged()  # … but without that one user there is no evidence
    everyone = evaluate(_threads([(12, 4, 0.3, 0.85)] * 9), cfg=cfg)
    assert [r.rule.metric for r in everyone.flagged()] == ["found_anything_rate"]


# ---- the concurrent control in the parameter source ------------------------------------------


def _set(label: str) -> ParamSet:
    return ParamSet(label, defaults().values)


def test_the_control_keeps_a_share_of_threads_on_the_last_good_version() -> None:
    active, good = _set("tuner-7"), _set("tuner-6")
    threads = [uuid.uuid4() for _ in range(4000)]
    state = SourceState(active, monitored=True, control=good, control_share=0.1)
    picked = [state.pick(t) for t in threads]
    share = sum(p is good for p in picked) / len(picked)
    assert 0.085 < share < 0.115 and all(p in (active, good) for p in picked)
    assert [state.pick(t) for t in threads[:50]] == picked[:50]  # a thread keeps its arm
    assert state.pick(None) is active  # no thread (/v1/context): the active version
    assert all(control_for("tuner-7", t, 0.1) == (p is good)
               for t, p in zip(threads, picked, strict=True))  # fmt: skip
    settled = SourceState(active, monitored=False, control=good, control_share=0.1)
    assert all(settled.pick(t) is active for t in threads[:200])  # past the horizon: no control
    none_good = SourceState(active, monitored=True, control=None, control_share=0.1)
    in_control = next(t for t in threads if control_for("tuner-7", t, 0.1))
    assert none_good.pick(in_control) is None  # MaaS's own parameters are the control
    paired = SourceState(
        active,
        str(uuid.uuid4()),
        "paired",
        "variant",
        {"baseline": good, "variant": _set("tuner-9")},
        True,
        good,
        0.1,
    )
    assert paired.pick(in_control).version == "tuner-9"  # an experiment's arm comes first


# ---- on real Postgres ------------------------------------------------------------------------


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[Any]:
    c = await connect(db_url)
    try:
        yield c
    finally:
        await c.close()


async def _users(conn: Any, n: int, history_before: Any) -> list[uuid.UUID]:
    """n users, each with one client run before `history_before` (history)."""
    users = []
    for i in range(n):
        user = await conn.fetchval(
            "INSERT INTO maas.users (name, api_key_hash, key_prefix) VALUES ($1, $2, 'p') "
            "RETURNING id", f"u{i}", f"h{i}")  # fmt: skip
        await _run(conn, user, uuid.uuid4(), "old", True, history_before, hours=-1)
        users.append(user)
    return users


async def _run(conn: Any, user: uuid.UUID, thread: uuid.UUID, label: str, found: bool,
               at: Any, hours: float = 0.0, client: str = "client") -> None:  # fmt: skip
    await conn.execute(
        "INSERT INTO selflearn.sensor_events (run_id, user_id, thread_id, client_type, mode, "
        "param_version, status, stop_at, started_at, finished_at, latency_ms, prompt_tokens, "
        "completion_tokens, llm_calls, memories_retrieved, memories_used, found_anything) "
        "VALUES (gen_random_uuid(), $1, $2, $6, 'offline', $3, 'COMPLETED', 'COMPLETED', "
        "$4::timestamptz + make_interval(secs => $5 * 3600), "
        "$4::timestamptz + make_interval(secs => $5 * 3600 + 0.1), 50, 10, 10, 2, "
        "$7, $7, $7 > 0)", user, thread, label, at, hours, client, int(found))  # fmt: skip


async def _traffic(conn: Any, users: list[uuid.UUID], active: Any, control: str, share: float,
                   found_active: float, found_control: float) -> None:  # fmt: skip
    """Ten threads of two runs per user, each thread in the arm the source would give it."""
    rng = np.random.default_rng(1)
    for i, user in enumerate(users):
        for j in range(10):
            thread = uuid.uuid5(uuid.NAMESPACE_OID, f"{i}.{j}")  # the same arms every run
            in_control = control_for(active["label"], thread, share)
            label, p = (control, found_control) if in_control else (active["label"], found_active)
            for _ in range(2):
                await _run(conn, user, thread, label, bool(rng.random() < p),
                           active["activated_at"], hours=0.01)  # fmt: skip


async def test_a_breach_against_the_concurrent_control_is_audited_and_rolled_back(
    conn: Any, db_url: str
) -> None:
    baseline = await tuner.store_version(conn, {}, PERSON)
    variant = await tuner.store_version(conn, {"retrieval.min_score": 1.0}, PERSON)
    await tuner.activate_parameter_version(conn, baseline, PERSON)
    await tuner.activate_parameter_version(conn, variant, PERSON)
    active = await tuner.active(conn)
    good = await tuner.version(conn, baseline)
    users = await _users(conn, 8, active["activated_at"])
    cfg = Config(persist=2, min_threads=8, min_users=5)
    pool = await create_pool(db_url, min_size=1, max_size=2, timeout_s=5.0)
    changed = asyncio.Event()
    monitor = guardrails.Monitor(lambda: pool, 0.05, cfg, changed.set)
    try:
        assert await monitor.check(conn) is None and not monitor.last.enough  # no traffic yet
        await _traffic(conn, users, active, good["label"], 0.3, found_active=0.2,
                       found_control=0.9)  # fmt: skip
        for u in users[:3]:  # emulator and new users' traffic is not compared
            await _run(conn, u, uuid.uuid4(), active["label"], True, active["activated_at"],
                       hours=0.01, client="emulator")  # fmt: skip
        assert await monitor.check(conn) is None  # flagged once: not yet persistent
        assert [r.rule.metric for r in monitor.last.flagged()] == ["found_anything_rate"]
        stop = asyncio.Event()
        task = asyncio.create_task(monitor.run_forever(stop))

        async def rolled_back() -> bool:
            row = await tuner.active(conn)
            return row is not None and row["version"] not in (baseline, variant)

        await eventually(rolled_back, timeout=10)
        stop.set()
        await task
    finally:
        await pool.close()
    assert changed.is_set()
    copy = await tuner.active(conn)
    assert copy["parent"] == baseline and copy["params"] == good["params"]
    breach, rollback = (await tuner.audit_log(conn))[1], (await tuner.audit_log(conn))[0]
    assert (breach["action"], rollback["action"]) == ("guardrail_breach", "auto_rollback")
    details = breach["details"]["found_anything_rate"]
    assert details["active"] < 0.4 < 0.7 < details["control"] and details["users"][0] == 8
    assert details["users"][1] >= 5 and details["threads"][0] + details["threads"][1] == 80
    assert "the concurrent control tuner-" in rollback["reason"]
    assert rollback["who"] == "auto-rollback monitor" and rollback["previous_version"] == variant
    assert await monitor.check(conn) is None and not monitor.last.enough  # the copy: no data


# ---- through the real app: live chats, emulator batches, many looks --------------------------


def _learn(**overrides: Any) -> SelflearnSettings:
    values: dict[str, Any] = {
        "sensor_poll_s": 0.2, "params_poll_s": 0.1, "emulator_archive_timeout_s": 30.0,
        "auto_rollback": True, "auto_rollback_s": 0.1, "auto_rollback_control_share": 0.5,
        "auto_rollback_persist": 2, "auto_rollback_min_threads": 4,
        "auto_rollback_min_users": 3,
    }  # fmt: skip
    values.update(overrides)
    return SelflearnSettings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def serving(db_url: str, tmp_path: Path, learn: SelflearnSettings) -> AsyncIterator[Api]:
    app = create_app(settings_for(db_url, tmp_path, rate_limit_per_min=0),
                     extensions=[lambda h: extend(h, learn)])  # fmt: skip
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        app.state.selflearn_emulator.transport = transport
        async with httpx.AsyncClient(transport=transport, base_url="http://maas", timeout=60,
                                     headers=ADMIN) as c:  # fmt: skip
            yield Api(app, c)


async def _activate(c: httpx.AsyncClient, params: dict[str, Any], reason: str) -> dict[str, Any]:
    made = await c.post(
        "/v1/selflearn/parameters/versions", json={"params": params, "reason": reason}
    )
    assert made.status_code == 201, made.text  # fmt: skip
    version = made.json()["version"]
    resp = await c.post(
        "/v1/selflearn/parameters/activate", json={"version": version, "reason": reason}
    )
    assert resp.status_code == 200, resp.text  # fmt: skip
    return (await c.get(f"/v1/selflearn/parameters/versions/{version}")).json()  # type: ignore


async def _remembering(api: Api, name: str) -> httpx.AsyncClient:
    """A user with history: a fact imported and archived into memories."""
    user = await api.user(name)
    thread = (await user.post("/v1/threads", json={"title": "notes"})).json()["thread_id"]
    fact = f"My locker code at the {name} gym is 4711 and my coach is called Brandt."
    await user.post(f"/v1/threads/{thread}/messages",
                    json={"messages": [{"role": "user", "text": fact}]})  # fmt: skip
    await close_and_archive(user, thread)
    return user


async def _ask(user: httpx.AsyncClient, label: str, share: float, arm: str | None,
               message: str = "What is my locker code at the gym?") -> dict[str, Any]:  # fmt: skip
    """A chat in a new thread; with `arm`, in a thread of that arm of the monitored version."""
    while True:
        thread = (await user.post("/v1/threads", json={})).json()["thread_id"]
        if arm is None or control_for(label, thread, share) == (arm == "control"):
            break
    resp = await user.post("/v1/chat", json={"message": message, "thread_id": thread})
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def _sensor_caught_up(api: Api) -> None:
    pool = api.service.runtime.pool

    async def done() -> bool:
        return not await pool.fetchval(
            "SELECT count(*) FROM selflearn.finished_runs f WHERE NOT EXISTS "
            "(SELECT 1 FROM selflearn.sensor_events s WHERE s.run_id = f.run_id)")  # fmt: skip

    await eventually(done, timeout=20)


async def _emulate(c: httpx.AsyncClient, seed: int) -> None:
    run = await c.post("/v1/selflearn/emulator/runs", json={"dialogs": 3, "seed": seed})
    assert run.status_code == 202, run.text

    async def ended() -> bool:
        view = (await c.get(f"/v1/selflearn/emulator/runs/{run.json()['id']}")).json()
        return view["status"] != "running"

    await eventually(ended, timeout=60)


async def _looks(monitor: guardrails.Monitor, more: int) -> None:
    start = monitor.watch.looks

    async def looked() -> bool:
        return monitor.watch.looks >= start + more

    await eventually(looked, timeout=20)


async def test_one_new_tenant_finding_nothing_cannot_roll_back_the_admins_version(
    db_url: str, tmp_path: Path
) -> None:
    """Issue #20: a new user's 60 chats on an empty store rolled back the admin's version within
    30 s (the old monitor compared the active version's last 50 runs with the previous
    version's last 50, whoever made them)."""
    async with serving(db_url, tmp_path, _learn()) as api:
        c, monitor = api.client, api.app.state.selflearn_monitor
        first = await _activate(c, {}, "the admin's parameters")
        regulars = [await _remembering(api, f"regular{i}") for i in range(4)]
        for _ in range(13):  # history on the first version: 52 chats that find their memories
            for user in regulars:
                await _ask(user, first["label"], 0.5, None)
        second = await _activate(c, {"context.history_messages": 5}, "the admin's change")
        for i in range(3):  # both arms of the new version, every regular user
            for user in regulars:
                await _ask(user, second["label"], 0.5, "control" if i % 2 else "active")
                await _ask(user, second["label"], 0.5, "active" if i % 2 else "control")
        newcomer = await api.user("newcomer")
        for i in range(60):
            await newcomer.post("/v1/chat", json={"message": f"Do you know my plan number {i}?"})
        await _sensor_caught_up(api)
        await _looks(monitor, 20)
        active = (await c.get("/v1/selflearn/parameters/active")).json()["active"]
        assert active["version"] == second["version"]
        actions = [a["action"] for a in (await c.get("/v1/selflearn/audit")).json()]
        assert "auto_rollback" not in actions and "guardrail_breach" not in actions
        assert monitor.last.enough and monitor.last.users == (4, 4)  # it did compare: like
        assert not monitor.last.flagged()  # with like, the newcomer left out


async def test_monitoring_aa_with_emulator_batches_then_a_real_degradation_rolls_back(
    db_url: str, tmp_path: Path
) -> None:
    """A version identical to the last good one, live chats and emulator batches between many
    looks: nothing rolls back. Then a version that retrieves nothing: rolled back, from the live
    chats alone."""
    async with serving(db_url, tmp_path, _learn()) as api:
        c, monitor = api.client, api.app.state.selflearn_monitor
        good = await _activate(c, {}, "good")
        regulars = [await _remembering(api, f"r{i}") for i in range(4)]
        for user in regulars:
            await _ask(user, good["label"], 0.5, None)
        same = await _activate(c, {}, "identical to the last good one")
        for i in range(4):
            for user in regulars:
                await _ask(user, same["label"], 0.5, "active" if i % 2 else "control")
            if i % 2 == 0:  # an emulator batch (new synthetic users, empty stores)
                await _emulate(c, seed=i)
            await _sensor_caught_up(api)
            await _looks(monitor, 5)
        assert monitor.watch.looks >= 20 and monitor.last.enough
        actions = [a["action"] for a in (await c.get("/v1/selflearn/audit")).json()]
        assert "auto_rollback" not in actions
        assert (await c.get("/v1/selflearn/parameters/active")).json()["active"]["version"] == (
            same["version"])  # fmt: skip

        broken = await _activate(c, {"retrieval.min_score": 5.0}, "retrieves nothing")
        for _ in range(3):
            for user in regulars:
                await _ask(user, broken["label"], 0.5, "active")
                await _ask(user, broken["label"], 0.5, "control")
        await _sensor_caught_up(api)

        async def rolled_back() -> bool:
            now = (await c.get("/v1/selflearn/parameters/active")).json()["active"]
            return now is not None and now["version"] not in (good["version"], same["version"],
                                                             broken["version"])  # fmt: skip

        await eventually(rolled_back, timeout=20)
        audit = (await c.get("/v1/selflearn/audit", params={"limit": 2})).json()
        assert [a["action"] for a in audit] == ["auto_rollback", "guardrail_breach"]
        assert "found_anything_rate degraded" in audit[0]["reason"]
