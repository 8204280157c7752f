"""Test suites (#4): the engine, its checks, the API and its scoping, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.scripted_llm import ScriptedLLM
from maas.db.queries import all_queries
from maas.testsuite.checks import close_checks, send_checks
from maas.testsuite.suite import (
    SuiteError,
    default_dir,
    json_schema,
    load_all,
    load_file,
    parse,
)
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import Server
from tests.helpers import eventually

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
SHIPPED = ("memory-across-threads", "knowledge-update", "user-isolation")


async def finished(client: httpx.AsyncClient, test_run_id: str, timeout: float = 60) -> Any:
    async def done() -> Any:
        body = (await client.get(f"/v1/test-runs/{test_run_id}")).json()
        return body if body["status"] != "running" else None

    return await eventually(done, timeout)


def failures(detail: dict[str, Any]) -> list[Any]:
    return [
        (s["index"], s["description"], [c for c in s["checks"] if not c["passed"]])
        for s in detail["steps"]
        if not s["passed"]
    ]


# --- the suite files and their schema --------------------------------------------------------


def test_shipped_suites_are_valid_and_the_schema_file_is_current() -> None:
    suites, errors = load_all()
    assert errors == []
    assert set(SHIPPED) <= set(suites)
    written = json.loads((default_dir() / "schema.json").read_text())
    assert written == json_schema(), "regenerate seeds/test_suites/schema.json"


def test_schema_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    bad = {
        "name": "typo",
        "steps": [
            {"action": "send", "user": "alice", "thread": "t1", "message": "hi"},
            {
                "action": "send",
                "user": "alice",
                "thread": "t1",
                "message": "x",
                "expect": {"answer_contain": ["y"]},
            },
            {"action": "close", "user": "Alice!", "thread": "t1"},
            {
                "action": "send",
                "user": "a",
                "thread": "t",
                "message": "m",
                "expect": {"memory_retrieved": [{"regex": "(unclosed"}]},
            },
        ],
    }
    path = tmp_path / "typo.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(SuiteError) as caught:
        load_file(path)
    message = str(caught.value)
    assert message.startswith("typo.json: ")
    assert "steps[1].expect.answer_contain: Extra inputs are not permitted" in message
    assert "steps[2].user: String should match pattern" in message
    assert "steps[3].expect.memory_retrieved[0]" in message and "regular expression" in message

    (tmp_path / "other.json").write_text(json.dumps({**bad, "steps": bad["steps"][:1]}))
    with pytest.raises(SuiteError, match=r"other.json: name: 'typo' must equal"):
        load_file(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(SuiteError, match=r"broken.json: not JSON: line 1"):
        load_file(tmp_path / "broken.json")
    with pytest.raises(
        SuiteError, match=r"suite_def: steps\[0\]: Input tag 'dance' found using 'action'"
    ):
        parse(
            {"name": "x", "steps": [{"action": "dance", "user": "a", "thread": "t"}]}, "suite_def"
        )
    suites, errors = load_all(tmp_path)
    assert suites == {} and sorted(e.source for e in errors) == [
        "broken.json",
        "other.json",
        "typo.json",
    ]


# --- the checks, on crafted run details -----------------------------------------------------


def run_detail(answer: str, memories: list[tuple[str, bool]], status: str = "COMPLETED") -> Any:
    history = [{"status": s} for s in ("NEW", "ANALYZING", "ANALYZED", "ASSEMBLING", "READY")]
    history += [{"status": "RESPONDING"}, {"status": status}]
    return {
        "status": status,
        "error": None,
        "answer": answer,
        "history": history,
        "memories": [{"text": t, "used": used} for t, used in memories],
    }


def test_isolation_checks_fail_when_bob_gets_alices_memory() -> None:
    """The isolation suite's checks for bob, on a run where tenancy broke, fail."""
    suites, _ = load_all()
    bob_asks = suites["user-isolation"].steps[3]
    assert bob_asks.user == "bob" and bob_asks.action == "send"
    leaked = run_detail(
        "[offline mode] From memory:\n- User: My locker code is 4817 and ...",
        [("User: My locker code is 4817 and my password hint is ZEBRAFISH.", True)],
    )
    failed = {c.name for c in send_checks(bob_asks.expect, leaked) if not c.passed}
    assert failed == {"answer_not_contains", "memory_not_retrieved"}
    clean = run_detail("[offline mode] I have nothing in memory about that.", [])
    assert all(c.passed for c in send_checks(bob_asks.expect, clean))


async def test_isolation_suite_fails_when_search_ignores_the_owner(
    make_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Break tenancy for real (the memory search forgets its owner filter): the suite catches it."""
    search = all_queries()["search_memories"]
    broken = search.replace("m.user_id = $1 AND", "$1::uuid IS NOT NULL AND")
    broken = broken.replace("p.user_id = $1 AND", "$1::uuid IS NOT NULL AND")  # BM25 postings
    assert broken != search and "m.user_id = $1" not in broken and "p.user_id" not in broken
    monkeypatch.setitem(all_queries(), "search_memories", broken)
    async with make_api() as api:
        owner = await api.user("owner")
        started = (await owner.post("/v1/test-runs", json={"suite": "user-isolation"})).json()
        detail = await finished(owner, started["id"])
    assert detail["status"] == "failed"
    failed = {s["index"]: s for s in detail["steps"] if not s["passed"]}
    assert set(failed) == {6, 7}  # bob gets alice's code, alice gets bob's
    bob_asks = failed[6]
    assert bob_asks["user"] == "bob"
    leaked = [c for c in bob_asks["checks"] if not c["passed"]]
    # The run view still hides the other owner's memory; the answer that quotes it does not.
    assert [(c["name"], c["expected"]) for c in leaked] == [("answer_not_contains", "no 4817")]
    assert "4817" in leaked[0]["actual"]


def test_send_checks_each_kind_can_fail() -> None:
    suites, _ = load_all()
    asks = suites["knowledge-update"].steps[-1]  # green wins, blue is gone
    stale = run_detail(
        "From memory: - User: My favourite colour is blue.", [("colour is blue", True)]
    )
    checks = {(c.name, c.passed) for c in send_checks(asks.expect, stale)}
    assert ("answer_contains", False) in checks and ("answer_not_contains", False) in checks
    assert ("memory_retrieved", False) in checks and ("memory_not_retrieved", False) in checks
    assert ("status", True) in checks

    first = suites["memory-across-threads"].steps[3]  # within 3 stages, memory used
    retried = run_detail("piano", [("User: My sister Maria teaches piano in Berlin.", False)])
    retried["history"].insert(2, {"status": "ANALYZING"})
    by_name = {c.name: c for c in send_checks(first.expect, retried)}
    assert not by_name["within_stages"].passed and by_name["within_stages"].actual.startswith("4")
    assert not by_name["memory_used"].passed and by_name["memory_retrieved"].passed
    failed = run_detail("", [], status="FAILED")
    assert not send_checks(first.expect, failed)[0].passed


def test_close_checks_fail_on_a_failed_job_or_a_missing_memory() -> None:
    suites, _ = load_all()
    close = suites["knowledge-update"].steps[4]
    checks = close_checks(close.expect, {"status": "failed", "error": "boom"}, ["colour is blue"])
    assert [c.passed for c in checks] == [False, False, False]


# --- the engine through the API ---------------------------------------------------------------


@pytest.mark.parametrize("suite", SHIPPED)
async def test_shipped_suite_passes_in_mock_mode(make_api: Any, suite: str) -> None:
    async with make_api() as api:
        alice = await api.user("owner")
        started = await alice.post("/v1/test-runs", json={"suite": suite, "mode": "mock"})
        assert started.status_code == 202, started.text
        assert started.json()["status"] == "running"
        detail = await finished(alice, started.json()["id"])
        assert detail["status"] == "passed", failures(detail)
        n = detail["steps_total"]
        assert detail["passed"] == n == len(detail["steps"]) and detail["failed"] == 0
        assert detail["finished_at"] and detail["mode"] == "mock"
        sent = [s for s in detail["steps"] if s["action"] == "send"]
        assert all(s["run_id"] and s["checks"][0]["name"] == "status" for s in sent)
        run = await alice.get(f"/v1/runs/{sent[-1]['run_id']}")  # the owner may inspect it
        assert run.status_code == 200 and run.json()["mode"] == "offline"
        assert run.json()["client_type"] == "test-runner"


WRONG = {
    "name": "wrong-expectation",
    "description": "the answer is about piano, the suite expects banjo",
    "steps": [
        {"action": "send", "user": "alice", "thread": "t1", "message": "My aunt Rosa plays piano."},
        {"action": "close", "user": "alice", "thread": "t1"},
        {
            "action": "send",
            "user": "alice",
            "thread": "t2",
            "message": "What does my aunt Rosa play?",
            "expect": {"answer_contains": ["piano", "banjo"], "memory_retrieved": ["Rosa"]},
        },
        {"action": "close", "user": "alice", "thread": "t9"},
    ],
}


async def test_a_wrong_expectation_fails_with_that_check_marked(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user("owner")
        started = await alice.post("/v1/test-runs", json={"suite_def": WRONG})
        assert started.status_code == 202 and started.json()["mode"] == "mock"
        detail = await finished(alice, started.json()["id"])
        assert detail["status"] == "failed"
        assert (detail["passed"], detail["failed"]) == (2, 2)
        asked = detail["steps"][2]
        verdicts = {(c["name"], c["expected"]): c["passed"] for c in asked["checks"]}
        assert verdicts == {
            ("status", "COMPLETED"): True,
            ("answer_contains", "piano"): True,
            ("answer_contains", "banjo"): False,
            ("memory_retrieved", "Rosa"): True,
        }
        missing = detail["steps"][3]["checks"]
        assert [(c["name"], c["passed"]) for c in missing] == [("thread", False)]
        assert detail["suite_def"]["name"] == "wrong-expectation"


def llm(scripted: ScriptedLLM) -> dict[str, Any]:
    return {"llm_base_url": scripted.base_url, "llm_api_key": "sk-test", "llm_model": "scripted"}


async def test_mock_mode_never_reaches_the_configured_llm_live_mode_does(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    async with make_api(**llm(scripted), embedder="openai", embedding_model="scripted") as api:
        owner = await api.user("owner")
        mock = await owner.post("/v1/test-runs", json={"suite": "user-isolation", "mode": "mock"})
        detail = await finished(owner, mock.json()["id"])
        assert detail["status"] == "passed", failures(detail)
        assert scripted.requests == []  # nothing of the mock run went out: no LLM, no embeddings
        runs = [s["run_id"] for s in detail["steps"] if s["run_id"]]
        modes = {(await owner.get(f"/v1/runs/{r}")).json()["mode"] for r in runs}
        assert modes == {"offline"}

        live = await owner.post("/v1/test-runs", json={"suite_def": WRONG, "mode": "live"})
        detail = await finished(owner, live.json()["id"])
        assert detail["mode"] == "live"
        assert {r.stage for r in scripted.requests} >= {"analyzer", "archivist", "responder"}
        assert any(r.path.endswith("/embeddings") for r in scripted.requests)
        first = detail["steps"][0]["run_id"]
        assert (await owner.get(f"/v1/runs/{first}")).json()["mode"] == "llm"
        # A normal user of the same service still gets the configured LLM.
        plain = (await owner.post("/v1/chat", json={"message": "I like tea."})).json()
        assert plain["mode"] == "llm"


async def test_scoping_other_users_get_404_admin_sees_all(make_api: Any) -> None:
    async with make_api() as api:
        alice, bob = await api.user("alice"), await api.user("bob")
        mine = (await alice.post("/v1/test-runs", json={"suite": "user-isolation"})).json()
        detail = await finished(alice, mine["id"])
        run_ids = [s["run_id"] for s in detail["steps"] if s["run_id"]]
        assert detail["users"].keys() == {"alice", "bob"}  # the suite's throwaway users

        assert (await bob.get(f"/v1/test-runs/{mine['id']}")).status_code == 404
        assert (await bob.get(f"/v1/test-runs/{mine['id']}")).json()["error"]["code"] == (
            "not_found"
        )
        assert (await bob.get("/v1/test-runs")).json()["test_runs"] == []
        for run_id in run_ids:  # the owner inspects the throwaway users' runs, nobody else does
            assert (await alice.get(f"/v1/runs/{run_id}")).status_code == 200
            assert (await bob.get(f"/v1/runs/{run_id}")).status_code == 404
            assert (await bob.get(f"/v1/runs/{run_id}/events")).status_code == 404
        events = await alice.get(f"/v1/runs/{run_ids[0]}/events")
        assert events.status_code == 200 and "COMPLETED" in events.text

        theirs = (await bob.post("/v1/test-runs", json={"suite_def": WRONG})).json()
        await finished(bob, theirs["id"])
        listed = (await api.client.get("/v1/test-runs", headers=ADMIN)).json()["test_runs"]
        assert [t["id"] for t in listed] == [theirs["id"], mine["id"]]  # newest first
        assert (
            await api.client.get(f"/v1/test-runs/{mine['id']}", headers=ADMIN)
        ).status_code == 200
        assert (await api.client.get(f"/v1/runs/{run_ids[0]}", headers=ADMIN)).status_code == 200
        assert [t["id"] for t in (await alice.get("/v1/test-runs")).json()["test_runs"]] == [
            mine["id"]
        ]
        # A throwaway user's key cannot be had, but its runs are not bob's even by their user.
        other_runs = (await bob.post("/v1/chat", json={"message": "I own this."})).json()
        assert (await alice.get(f"/v1/runs/{other_runs['run_id']}")).status_code == 404


async def test_admin_runs_a_suite_and_errors_are_4xx_in_the_house_shape(make_api: Any) -> None:
    async with make_api() as api:
        admin = api.client
        suites = (await admin.get("/v1/test-suites", headers=ADMIN)).json()
        names = {s["name"]: s for s in suites["suites"]}
        assert set(SHIPPED) <= set(names) and suites["invalid"] == []
        assert names["user-isolation"]["steps"] == 8 and names["user-isolation"]["description"]

        cases = [
            ({"suite": "no-such-suite"}, 404, "not_found"),
            ({"suite": "user-isolation", "mode": "dry"}, 422, "invalid_request"),
            ({}, 422, "invalid_request"),
            ({"suite": "user-isolation", "suite_def": WRONG}, 422, "invalid_request"),
            ({"suite_def": {"name": "x", "steps": []}}, 422, "invalid_suite"),
            ({"suite_def": {**WRONG, "steps": [{"action": "send"}]}}, 422, "invalid_suite"),
            ({"suite_def": "a string"}, 422, "invalid_request"),
        ]
        for body, status, code in cases:
            resp = await admin.post("/v1/test-runs", json=body, headers=ADMIN)
            assert resp.status_code == status, (body, resp.text)
            assert resp.json()["error"]["code"] == code, (body, resp.text)
        bad = await admin.post("/v1/test-runs", json={"suite_def": {"name": "x"}}, headers=ADMIN)
        assert "suite_def: steps: Field required" in bad.json()["error"]["message"]
        assert (await admin.get(f"/v1/test-runs/{uuid.uuid4()}", headers=ADMIN)).status_code == 404

        started = await admin.post(
            "/v1/test-runs", json={"suite": "knowledge-update"}, headers=ADMIN
        )
        assert started.status_code == 202
        detail = await finished(admin_client(api), started.json()["id"])
        assert detail["status"] == "passed" and detail["owner_id"] is None


def admin_client(api: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=api.client._transport, base_url="http://maas", headers=ADMIN, timeout=30
    )


async def test_running_test_runs_per_owner_are_capped(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user("alice")
        slow = {**WRONG, "steps": WRONG["steps"] * 5}
        codes = [
            (await alice.post("/v1/test-runs", json={"suite_def": slow})).status_code
            for _ in range(4)
        ]
        assert codes == [202, 202, 202, 409]


async def test_an_interrupted_test_run_ends_as_error_never_running(make_api: Any) -> None:
    async with make_api() as api:
        alice = await api.user("alice")
        slow = {**WRONG, "steps": WRONG["steps"] * 10}
        started = (await alice.post("/v1/test-runs", json={"suite_def": slow})).json()
        user = (await alice.get("/v1/users/me")).json()["user_id"]
        pool = api.service.runtime.pool
        # A crashed process: its heartbeat lapsed long ago and nobody renews it.
        crashed = await pool.fetchval(
            "INSERT INTO maas.test_runs (owner_id, suite_name, suite_hash, suite, mode,"
            " steps_total, heartbeat_until) VALUES ($1, 'x', 'h', '{}', 'mock', 1,"
            " now() - interval '1 minute') RETURNING id",
            uuid.UUID(user),
        )
    # Shutdown ends the live one at once; the next start sweeps the crashed one.
    async with make_api() as api:
        pool = api.service.runtime.pool
        row = await pool.fetchrow(
            "SELECT status, error FROM maas.test_runs WHERE id = $1", uuid.UUID(started["id"])
        )
        assert row["status"] == "error" and "interrupted" in row["error"]

        async def swept() -> Any:
            return await pool.fetchval(
                "SELECT error FROM maas.test_runs WHERE id = $1 AND status = 'error'", crashed
            )

        assert "stopped" in await eventually(swept)
        assert (
            await pool.fetchval("SELECT count(*) FROM maas.test_runs WHERE status = 'running'") == 0
        )


async def test_erasing_the_owner_erases_the_throwaway_users(make_api: Any) -> None:
    async with make_api() as api:
        alice, bob = await api.user("alice"), await api.user("bob")
        started = (await alice.post("/v1/test-runs", json={"suite": "user-isolation"})).json()
        detail = await finished(alice, started["id"])
        await finished(
            bob, (await bob.post("/v1/test-runs", json={"suite_def": WRONG})).json()["id"]
        )
        pool = api.service.runtime.pool
        made = [uuid.UUID(u) for u in detail["users"].values()]
        assert await pool.fetchval(
            "SELECT count(*) FROM maas.memories WHERE user_id = ANY($1)", made
        )
        assert (await alice.delete("/v1/users/me")).status_code == 200
        for table in ("users", "memories", "pipeline_runs"):
            column = "id" if table == "users" else "user_id"
            n = await pool.fetchval(
                f"SELECT count(*) FROM maas.{table} WHERE {column} = ANY($1)", made
            )
            assert n == 0, table
        assert await pool.fetchval("SELECT count(*) FROM maas.test_runs") == 1  # bob's stays
        assert await pool.fetchval("SELECT count(*) FROM maas.test_run_users") == 1
        # Erasing a throwaway user itself (admin) works too and leaves its test run.
        left = await pool.fetchval("SELECT user_id FROM maas.test_run_users")
        erased = await api.client.delete(f"/v1/admin/users/{left}", headers=ADMIN)
        assert erased.status_code == 200 and erased.json()["erased"]["users"] == 1
        assert await pool.fetchval("SELECT count(*) FROM maas.test_run_users") == 0
        assert await pool.fetchval("SELECT count(*) FROM maas.test_runs") == 1


# --- the CLI against a served process --------------------------------------------------------


def test_cli_runs_a_suite_file_against_maas_serve(tmp_path: Path, db_url: str) -> None:
    server = Server(
        tmp_path / "data",
        {"MAAS_DATABASE_URL": db_url, "MAAS_POLL_S": "0.2", "MAAS_EMBEDDER": "none"},
    ).start()
    try:
        maas = str(Path(sys.executable).with_name("maas"))
        base = [maas, "test-suite", "run", "--url", server.url, "--data-dir", str(server.data_dir)]
        good = default_dir() / "user-isolation.json"
        report = tmp_path / "report.json"
        ok = subprocess.run(
            [*base, str(good), "--json", str(report)], capture_output=True, text=True, timeout=120
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "[8/8] PASS" in ok.stdout and "passed: 8/8 steps" in ok.stdout
        assert json.loads(report.read_text())["status"] == "passed"

        wrong = tmp_path / "wrong-expectation.json"
        wrong.write_text(json.dumps(WRONG))
        bad = subprocess.run([*base, str(wrong)], capture_output=True, text=True, timeout=120)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        assert "[3/4] FAIL" in bad.stdout and "x answer_contains: expected 'banjo'" in bad.stdout
        assert "failed: 2 of 4 steps failed" in bad.stdout

        typo = tmp_path / "typo.json"
        typo.write_text(json.dumps({"name": "typo", "steps": [{"action": "send"}]}))
        invalid = subprocess.run([*base, str(typo)], capture_output=True, text=True, timeout=60)
        assert (
            invalid.returncode == 2 and "typo.json: steps[0].user: Field required" in invalid.stderr
        )
    finally:
        server.kill(15)


# --- patterns run on RE2 ----------------------------------------------------------------------


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=secret)", r"(?<!x)y", "a{1000}{1000}"])
async def test_patterns_re2_cannot_run_are_refused_when_the_suite_is_submitted(
    make_api: Any, pattern: str
) -> None:
    """Backreferences and lookaround need backtracking: a 422 naming the field at submission,
    no test run started."""
    suite = {
        "name": "bad-pattern",
        "steps": [
            {
                "action": "send",
                "user": "u",
                "thread": "t",
                "message": "hello there",
                "expect": {"memory_retrieved": [{"regex": pattern}]},
            }
        ],
    }
    async with make_api() as api:
        alice = await api.user()
        resp = await alice.post("/v1/test-runs", json={"suite_def": suite})
        assert resp.status_code == 422, resp.text
        error = resp.json()["error"]
        assert error["code"] == "invalid_suite"
        assert "steps[0].expect.memory_retrieved[0].Regex.regex" in error["message"]
        assert "not a valid regular expression" in error["message"]
        assert (await alice.get("/v1/test-runs")).json()["test_runs"] == []
