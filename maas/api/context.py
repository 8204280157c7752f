"""What the routes get: the API's context, built by the composition root when the service starts
(app.state.api). Routes reach it through the getters in deps.py, never the service itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maas.pipeline.lanes import Lanes
from maas.pipeline.repo import RunRepository
from maas.runtime.context import Runtime
from maas.runtime.listener import ListenerHealth


@dataclass(frozen=True)
class ApiContext:
    runtime: Runtime  # the pipeline's: pool, settings, models, signals
    lanes: Lanes  # submit, drive, wait
    repo: RunRepository  # the only writer of runs and archive jobs
    admin_key: str | None
    listener: ListenerHealth
    draining: Callable[[], bool]  # SIGTERM came: the process finishes what it has and stops
    scrape_state: dict[str, Any] = field(default_factory=dict)  # filled by GET /metrics
    # extensions' sections of GET /health (ExtensionHost.add_health)
    health_parts: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)
