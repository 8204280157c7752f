"""Prometheus metrics: what an operator watches. One registry per service (tests run many)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from maas.llm.types import CallLog

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.stage_seconds = Histogram(
            "maas_stage_seconds",
            "Work + commit time of a stage attempt that succeeded",
            ["stage"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.stage_commit_seconds = Histogram(
            "maas_stage_commit_seconds",
            "Commit time (the guarded write transaction) of a stage attempt that succeeded",
            ["stage"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.stage_failures = Counter(
            "maas_stage_failures_total",
            "Failed stage attempts by what happened next",
            ["stage", "then"],
            registry=self.registry,
        )
        self.llm_calls = Counter(
            "maas_llm_calls_total",
            "Inferences (LLM or offline) by outcome",
            ["stage", "model", "outcome"],
            registry=self.registry,
        )
        self.llm_tokens = Counter(
            "maas_llm_tokens_total",
            "Tokens of inferences",
            ["stage", "model", "kind"],
            registry=self.registry,
        )
        self.llm_seconds = Histogram(
            "maas_llm_call_seconds",
            "Duration of one inference",
            ["stage"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def observe_call(self, call: CallLog) -> None:
        self.llm_calls.labels(call.stage, call.model, call.outcome).inc()
        self.llm_tokens.labels(call.stage, call.model, "prompt").inc(call.prompt_tokens)
        self.llm_tokens.labels(call.stage, call.model, "completion").inc(call.completion_tokens)
        self.llm_seconds.labels(call.stage).observe(call.ms / 1000)

    def add_state(self, read: Callable[[], dict[str, Any]]) -> None:
        """Gauges read at scrape time (queue depths, listener health) from `read()`."""
        self.registry.register(_StateCollector(read))


class _StateCollector(Collector):
    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        state = self.read()
        depth = GaugeMetricFamily(
            "maas_runs_unfinished", "Unfinished runs by status (last scrape)", labels=["status"]
        )
        for status, n in sorted(state.get("queue", {}).items()):
            depth.add_metric([status], n)
        yield depth
        listener = state.get("listener", {})
        yield GaugeMetricFamily(
            "maas_listener_connected",
            "1 if the LISTEN connection is up",
            value=1.0 if listener.get("connected") else 0.0,
        )
        yield GaugeMetricFamily(
            "maas_listener_reconnects",
            "Reconnects of the LISTEN connection",
            value=float(listener.get("reconnects", 0)),
        )
