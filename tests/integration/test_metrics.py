"""GET /metrics: the figures an operator watches, in Prometheus text format."""

from __future__ import annotations

from typing import Any

from bench.scripted_llm import Reply, ScriptedLLM


def value(text: str, prefix: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert lines, f"{prefix} not in /metrics"
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


async def test_metrics_count_stages_inferences_failures_and_queues(
    make_api: Any, scripted: ScriptedLLM
) -> None:
    scripted.push(Reply(status=500), stage="responder")  # one retried attempt
    llm = {
        "llm_base_url": scripted.base_url,
        "llm_api_key": "k",
        "llm_model": "scripted",
        "llm_max_retries": 0,
    }
    async with make_api(**llm) as api:
        alice = await api.user()
        for text in ("first question about tea", "second question about tea"):
            assert (await alice.post("/v1/chat", json={"message": text})).json()["status"] == (
                "COMPLETED"
            )
        resp = await api.client.get("/metrics")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
        text = resp.text
        assert value(text, 'maas_stage_seconds_count{stage="analyzer"}') == 2
        assert value(text, 'maas_stage_seconds_count{stage="responder"}') == 2
        assert value(text, 'maas_stage_commit_seconds_count{stage="assembler"}') == 2
        work = value(text, 'maas_stage_seconds_sum{stage="assembler"}')
        assert 0 < value(text, 'maas_stage_commit_seconds_sum{stage="assembler"}') < work
        assert value(text, 'maas_stage_failures_total{stage="responder",then="retry"}') == 1
        ok = 'maas_llm_calls_total{model="scripted",outcome="ok",stage="responder"}'
        assert value(text, ok) == 2
        assert value(text, 'maas_llm_tokens_total{kind="prompt",model="scripted"') > 0
        assert value(text, "maas_listener_connected") == 1
        assert "maas_runs_unfinished" in text
        assert "tea" not in text  # counts only, never user text
