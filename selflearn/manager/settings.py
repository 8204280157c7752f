"""Manager settings (MAAS_SELFLEARN_MANAGER_* env vars), built when the extension mounts."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ManagerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MAAS_SELFLEARN_MANAGER_", env_file=".env", extra="ignore"
    )

    # Critical changes wait for a person: any change of these parameters (the model, how it
    # samples) …
    critical_params: list[str] = Field(
        default_factory=lambda: ["llm.model", "llm.temperature", "llm.max_answer_tokens"]
    )
    # … or a new value outside these bounds (the context budget: cost and latency grow with it).
    critical_bounds: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {"context.max_tokens": (200.0, 4000.0)}
    )
    lease_s: float = 30.0  # a cycle whose heartbeat is older than this is orphaned
    heartbeat_s: float = 2.0  # progress and lease are written this often
    recover_s: float = 10.0  # how often orphaned cycles (a dead process's) are looked for
    # Experiment size of macro cycles and deep trials (dialogs per arm, whole episodes of 3).
    macro_dialogs: int = Field(default=24, ge=3, le=630)
    trial_dialogs: int = Field(default=12, ge=3, le=630)  # 4 units: a valid verdict
    micro_dialogs: int = Field(default=12, ge=3, le=630)
    concurrency: int = Field(default=4, ge=1, le=64)
    min_sample: int = Field(default=4, ge=2)
    # A goal's tests share this α in total (teacher/spending.py: the j-th at α·6/(π²j²)).
    alpha: float = Field(default=0.05, gt=0, le=0.2)
    # Macro cycles without an explicit size plan their dialogs for this power to find the
    # goal metric's minimum detectable effect (METRICS), up to max_dialogs per arm.
    plan_dialogs: bool = True
    power: float = Field(default=0.8, gt=0, lt=1)
    max_dialogs: int = Field(default=210, ge=3, le=630)
    # After a SHIP, the version now in force is measured again on fresh users (this many
    # dialogs; 0: not) and the goal's progress takes that value, not the winning arm's.
    remeasure_dialogs: int = Field(default=12, ge=0, le=630)
    bootstrap_resamples: int = Field(default=1000, ge=200, le=20000)
    deep_trials: int = Field(default=8, ge=1, le=200)
    # A constraint becomes a guardrail of the experiment with this share of its bound as margin.
    constraint_margin: float = Field(default=0.1, ge=0, le=1)
    schedule_micro_s: float = 0.0  # > 0: a micro cycle this often when nothing else runs
    # A deep search changes several parameters at once: its confirmed best waits for a person.
    deep_needs_approval: bool = True
    deep_confirm_dialogs: int = Field(default=24, ge=3, le=630)
