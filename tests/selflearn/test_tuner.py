"""The Tuner on real Postgres: guards, activation, rollback, the frozen spec, and the database
ParamSource reaching new runs without a restart (the automatic rollback: test_monitor.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from maas.db.pool import connect
from maas.params import BuiltinParams, defaults
from selflearn import tuner
from selflearn.paramsource import SourceState, TunerParams, arm_for
from selflearn.queries import q
from selflearn.teacher.spec import parse
from tests.conftest import ADMIN_KEY
from tests.helpers import eventually
from tests.selflearn.test_teacher_stats import SPEC

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PERSON = tuner.Change("person", "ada", "manual test")


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[Any]:
    c = await connect(db_url)
    try:
        yield c
    finally:
        await c.close()


async def counts(conn: Any) -> tuple[int, int]:
    versions = await conn.fetchval("SELECT count(*) FROM selflearn.experiment_parameters")
    audits = await conn.fetchval("SELECT count(*) FROM selflearn.parameter_audit")
    return versions, audits


async def test_guards_refuse_out_of_range_unknown_or_mistyped_and_change_nothing(conn: Any) -> None:
    for bad, message in [({"retrieval.min_score": 7.5}, "retrieval.min_score=7.5 is outside"),
                         ({"retrieval.nope": 1}, "unknown parameters: retrieval.nope"),
                         ({"context.include_dates": 1}, "must be a boolean")]:  # fmt: skip
        with pytest.raises(tuner.GuardViolation, match=message):
            await tuner.store_version(conn, bad, PERSON)
    assert await counts(conn) == (0, 0)

    good = await tuner.store_version(conn, {"retrieval.min_score": 0.2}, PERSON)
    await conn.execute(  # someone edits the row by hand, past the guard
        "UPDATE selflearn.experiment_parameters SET params = params || '{\"retrieval.rrf_k\": 0}'"
    )
    with pytest.raises(tuner.GuardViolation, match="retrieval.rrf_k=0 is outside"):
        await tuner.activate_parameter_version(conn, good, PERSON)
    assert await tuner.active(conn) is None and await counts(conn) == (1, 1)  # only the store


async def test_activate_is_atomic_one_active_with_diff_and_previous(conn: Any) -> None:
    v1 = await tuner.store_version(conn, {}, PERSON)
    v2 = await tuner.store_version(conn, {"context.max_tokens": 800}, PERSON, parent=v1)
    assert await tuner.activate_parameter_version(conn, v1, PERSON) is None
    assert await tuner.activate_parameter_version(conn, v2, PERSON) == v1
    actives = await conn.fetch("SELECT version FROM selflearn.experiment_parameters WHERE active")
    assert [r["version"] for r in actives] == [v2]
    with pytest.raises(asyncpg.UniqueViolationError):  # the database keeps it at most one
        await conn.execute("UPDATE selflearn.experiment_parameters SET active = true")
    last = (await tuner.audit_log(conn))[0]
    assert last["action"] == "activate" and last["actor"] == "person" and last["who"] == "ada"
    assert last["version"] == v2 and last["previous_version"] == v1
    assert last["diff"] == {"context.max_tokens": [1500, 800]}


async def test_rollback_rolls_forward_to_a_copy_of_the_last_good_version(conn: Any) -> None:
    good = await tuner.store_version(conn, {"retrieval.w_recency": 0.1}, PERSON)
    bad = await tuner.store_version(
        conn, {"retrieval.w_recency": 0.1, "retrieval.min_score": 3.0}, PERSON, parent=good
    )
    await tuner.activate_parameter_version(conn, good, PERSON)
    await tuner.activate_parameter_version(conn, bad, PERSON)
    new = await tuner.rollback_parameters(conn, tuner.Change("person", "ada", "answers got worse"))
    assert new is not None and new not in (good, bad)
    row = await tuner.version(conn, new)
    assert row["active"] and row["parent"] == good
    assert row["params"] == (await tuner.version(conn, good))["params"]
    assert (await tuner.version(conn, bad))["rolled_back_at"] is not None
    entry = (await tuner.audit_log(conn))[0]
    assert entry["action"] == "rollback" and entry["previous_version"] == bad
    assert entry["diff"] == {"retrieval.min_score": [3.0, 0.05]}
    with pytest.raises(tuner.Conflict, match="rolled back"):  # the teacher may not bring it back
        await tuner.activate_parameter_version(conn, bad, tuner.Change("teacher", "t", "retry"))

    again = await tuner.rollback_parameters(conn, PERSON)  # from the copy: the original is good
    assert (await tuner.version(conn, again or 0))["parent"] == good
    await conn.execute("UPDATE selflearn.experiment_parameters SET rolled_back_at = now()")
    await tuner.activate_parameter_version(conn, good, PERSON)
    assert await tuner.rollback_parameters(conn, PERSON) is None  # nothing good: MaaS's own
    assert await tuner.active(conn) is None
    with pytest.raises(tuner.Conflict, match="no active parameter version"):
        await tuner.rollback_parameters(conn, PERSON)


async def _experiment(conn: Any, spec: Any) -> uuid.UUID:
    row = await conn.fetchrow(
        "INSERT INTO selflearn.experiments (name, spec, spec_hash, mode) VALUES ($1, $2, $3, "
        "'paired') RETURNING id", spec.name, spec.raw, spec.hash)  # fmt: skip
    exp_id: uuid.UUID = row["id"]
    return exp_id


async def test_prepare_experiment_guards_both_arms_and_freezes_the_spec(conn: Any) -> None:
    bad = parse({**SPEC, "variant": {"retrieval.min_score": 1.0}})
    object.__setattr__(bad, "variant", {"retrieval.min_score": 50})  # past the spec's own check
    exp = await _experiment(conn, bad)
    with pytest.raises(tuner.GuardViolation):
        await tuner.prepare_experiment(conn, bad, exp, defaults().values)
    assert await counts(conn) == (0, 0)

    spec = parse(SPEC)
    b, v = await tuner.prepare_experiment(conn, spec, exp, defaults().values)
    rows = {r["arm"]: r for r in await tuner.versions(conn)}
    assert rows["baseline"]["version"] == b and rows["variant"]["version"] == v
    assert rows["variant"]["params"]["retrieval.min_score"] == 1.0
    assert rows["baseline"]["params"] == defaults().values
    assert {r["created_by"] for r in rows.values()} == {"teacher"}
    with pytest.raises(asyncpg.RaiseError, match="frozen"):
        await conn.execute("UPDATE selflearn.experiments SET spec = '{}' WHERE id = $1", exp)


def test_arm_assignment_is_deterministic_by_thread_and_balanced() -> None:
    exp = uuid.uuid4()
    threads = [uuid.uuid4() for _ in range(2000)]
    arms = [arm_for(exp, t) for t in threads]
    assert arms == [arm_for(exp, t) for t in threads]
    assert 0.45 < arms.count("variant") / len(arms) < 0.55
    base, var = defaults(), defaults()
    state = SourceState(None, str(exp), "split", None, {"baseline": base, "variant": var})
    for t in threads[:20]:
        assert state.pick(t) is (var if arm_for(exp, t) == "variant" else base)
    assert state.pick(None) is None  # no thread (a /v1/context call): the active version
    paired = SourceState(base, str(exp), "paired", "variant", {"baseline": base, "variant": var})
    assert paired.pick(threads[0]) is var


async def test_a_switch_reaches_new_runs_without_restart(learn_api: Any) -> None:
    async with learn_api(poll_s=0.2) as api:
        alice = await api.user("alice")
        first = (await alice.post("/v1/chat", json={"message": "My locker code is 4711."})).json()
        run = (await alice.get(f"/v1/runs/{first['run_id']}")).json()
        assert run["param_version"] == "builtin"

        made = await api.client.post(
            "/v1/selflearn/parameters/versions",
            headers=ADMIN,
            json={"params": {"context.max_tokens": 600}, "reason": "smaller context", "who": "ada"},
        )
        assert made.status_code == 201, made.text  # fmt: skip
        version = made.json()["version"]
        bad = await api.client.post(
            "/v1/selflearn/parameters/versions",
            headers=ADMIN,
            json={"params": {"context.max_tokens": 5}, "reason": "x"},
        )
        assert bad.status_code == 422  # fmt: skip
        assert bad.json()["error"]["code"] == "parameter_out_of_range"
        activate = {"version": version, "reason": "try it", "who": "ada"}
        resp = await api.client.post("/v1/selflearn/parameters/activate", headers=ADMIN,
                                     json=activate)  # fmt: skip
        assert resp.json() == {"active": version, "previous": None}

        second = (await alice.post("/v1/chat", json={"message": "Anything else?"})).json()
        run = (await alice.get(f"/v1/runs/{second['run_id']}")).json()
        assert run["param_version"] == f"tuner-{version}"
        frozen = await api.service.runtime.pool.fetchval(
            "SELECT params FROM maas.pipeline_runs WHERE id = $1", uuid.UUID(second["run_id"])
        )
        assert frozen["context.max_tokens"] == 600
        served = (await api.client.get("/v1/selflearn/parameters/active", headers=ADMIN)).json()
        assert served["serving"]["version"] == f"tuner-{version}"

        # A change made by another process: seen within one poll interval, no restart.
        pool = api.service.runtime.pool
        async with pool.acquire() as c:
            await tuner.deactivate(c, PERSON)
        await asyncio.sleep(api.app.state.selflearn_params.poll_s + 0.1)
        third = (await alice.post("/v1/chat", json={"message": "And now?"})).json()
        run = (await alice.get(f"/v1/runs/{third['run_id']}")).json()
        assert run["param_version"] == "builtin"
        audit = (await api.client.get("/v1/selflearn/audit", headers=ADMIN)).json()
        assert [a["action"] for a in audit] == ["deactivate", "activate", "store"]


async def test_a_paired_experiment_steers_only_while_its_process_holds_its_lock(
    conn: Any, db_url: str
) -> None:
    spec = parse(SPEC)
    exp = await _experiment(conn, spec)
    _, variant = await tuner.prepare_experiment(conn, spec, exp, defaults().values)
    await conn.execute("UPDATE selflearn.experiments SET live_arm = 'variant' WHERE id = $1", exp)
    source = TunerParams(lambda: conn, BuiltinParams(), poll_s=0.0)
    assert (await source.active()).version == "builtin"  # nobody holds it: abandoned, ignored

    holder = await connect(db_url)
    assert await holder.fetchval(q("teacher_hold_experiment"), str(exp)) is True
    assert (await source.active()).version == f"tuner-{variant}"
    assert await conn.fetch(q("teacher_fail_abandoned")) == []  # alive: left alone
    await holder.close()  # the process running it dies

    async def released() -> bool:
        return (await source.active()).version == "builtin"

    await eventually(released, timeout=5)
    assert [r["id"] for r in await conn.fetch(q("teacher_fail_abandoned"))] == [exp]
    status = await conn.fetchval("SELECT status FROM selflearn.experiments WHERE id = $1", exp)
    assert status == "failed"
