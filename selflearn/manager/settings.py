"""Manager settings (MAAS_SELFLEARN_MANAGER_* env vars), built when the extension mounts."""

from __future__ import annotations

from typing import Literal

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
    # Unattended learning (selflearn/manager/schedule.py), on by default: a micro cycle every
    # schedule_micro_s, a learning cycle (deep or macro) on an active goal every
    # schedule_learn_s, each with a fresh seed, within a budget: this process's CPU share while
    # they run, emulator runs (questions + turns) per day, and no learning while more client
    # runs than pause_live_runs_per_min finished in the last minute.
    unattended: bool = True
    schedule_micro_s: float = Field(default=3600.0, gt=0)
    schedule_learn_s: float = Field(default=6 * 3600.0, gt=0)
    schedule_learn_kind: Literal["deep", "macro"] = "deep"
    max_cpu_share: float = Field(default=0.25, gt=0, le=1)
    max_runs_per_day: int = Field(default=20000, ge=0)
    pause_live_runs_per_min: int = Field(default=60, ge=0)
    # A deep search's best ships once confirmed on fresh seeds (learning without a person);
    # true: it waits for a person's approval instead. Critical changes wait either way.
    deep_needs_approval: bool = False
    deep_confirm_dialogs: int = Field(default=24, ge=3, le=630)
    # Replay cycles (goals that learn from replays: budget recall, recall@k, …): the world each
    # cycle generates with a fresh seed (0 users: the cycle's corpus only; each user is a cluster
    # of the test, and 10 leave a goal's α spending room for many tests), the token budget
    # questions are asked at, the questions per conversation a search trial asks (a seeded
    # sample; 0: all of its half), the abstention floor.
    world_users: int = Field(default=10, ge=0, le=500)
    world_sessions: int = Field(default=20, ge=1, le=200)
    world_turns: int = Field(default=400, ge=0, le=20000)
    replay_budget: int = Field(default=2000, ge=50, le=32000)
    # A goal on budget recall at one budget must hold at the other budget `maas bench locomo`
    # reports: its replays ask each question at other_budget too, and budget recall there is a
    # guardrail with this non-inferiority margin (0 tokens: no such guardrail).
    other_budget: int = Field(default=500, ge=0, le=32000)
    other_budget_margin: float = Field(default=0.03, ge=0, le=1)
    search_questions: int = Field(default=30, ge=0, le=100000)
    abstain_floor: float = Field(default=1.0, ge=0, le=10)
