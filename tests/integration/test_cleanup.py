"""Retention: finished runs and their logs older than the retention are pruned, nothing else."""

from __future__ import annotations

from typing import Any

from maas.pipeline import maintenance


async def test_cleanup_prunes_only_old_finished_runs(make_api: Any) -> None:
    async with make_api(retention_days=1.0) as api:
        alice = await api.user()
        old = (await alice.post("/v1/chat", json={"message": "an old question about tea"})).json()
        new = (await alice.post("/v1/chat", json={"message": "a new question about tea"})).json()
        pool = api.service.runtime.pool
        await pool.execute(
            "UPDATE maas.pipeline_runs SET created_at = now() - interval '2 days' WHERE id = $1",
            old["run_id"],
        )
        await maintenance.cleanup(api.service.runtime, api.service.repo)
        runs = {str(r["id"]) for r in await pool.fetch("SELECT id FROM maas.pipeline_runs")}
        assert runs == {new["run_id"]}
        # The runs' calls; the archivist's (per-turn archiving: no run) are pruned by age alone.
        calls = await pool.fetch(
            "SELECT DISTINCT run_id FROM maas.llm_calls WHERE archive_job_id IS NULL"
        )
        assert {str(r["run_id"]) for r in calls} == {new["run_id"]}
        # The dialog itself is kept: messages are the provenance of memories.
        thread = (await alice.get(f"/v1/threads/{old['thread_id']}")).json()
        assert [m["role"] for m in thread["messages"]] == ["user", "assistant"]


async def test_ended_context_runs_are_pruned_and_not_counted_unfinished(make_api: Any) -> None:
    """A /v1/context run ends at READY (its stop_at): the retention prunes it like a completed
    chat, and /metrics does not count it among the unfinished runs."""
    async with make_api(retention_days=1.0) as api:
        alice = await api.user()
        for query in ("an old question about tea", "a new question about tea"):
            resp = await alice.post("/v1/context", json={"query": query})
            assert resp.status_code == 200, resp.text
        metrics = (await api.client.get("/metrics")).text
        assert 'maas_runs_unfinished{status="READY"}' not in metrics
        pool = api.service.runtime.pool
        await pool.execute(
            "UPDATE maas.pipeline_runs SET created_at = now() - interval '2 days'"
            " WHERE query LIKE 'an old%'"
        )
        await maintenance.cleanup(api.service.runtime, api.service.repo)
        left = [r["query"] for r in await pool.fetch("SELECT query FROM maas.pipeline_runs")]
        assert left == ["a new question about tea"]
