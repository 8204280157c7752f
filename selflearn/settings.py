"""Self-learning settings (MAAS_SELFLEARN_* env vars), built when the extension mounts."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SelflearnSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAAS_SELFLEARN_", env_file=".env", extra="ignore")

    sensor: bool = True  # record every finished run in selflearn.sensor_events
    sensor_poll_s: float = 5.0  # sweep for runs whose notification was lost
    sensor_batch: int = 500
    # The MaaS the emulator talks to; default: this process's own address (MAAS_HOST/MAAS_PORT).
    emulator_url: str | None = None
    emulator_archive_timeout_s: float = 120.0  # wait for a closed thread's memories
    emulator_request_timeout_s: float = 180.0  # a chat waits up to MAAS_CHAT_WAIT_S server-side
    # A running emulator run beats this often; one silent for emulator_stale_s (its process died)
    # is ended as failed by whichever process looks next.
    emulator_heartbeat_s: float = 5.0
    emulator_stale_s: float = 30.0
    # Tuner (#7): MaaS reads its parameters from selflearn.experiment_parameters
    tuner: bool = True
    params_poll_s: float = 2.0  # a parameter switch reaches new runs within this
    experiment_sensor_timeout_s: float = 60.0  # wait for the sensor after an experiment's arms
    # Automatic rollback (teacher/guardrails.py): for auto_rollback_horizon_h after a version's
    # activation, auto_rollback_control_share of threads keep the last good version (a
    # concurrent control) and every auto_rollback_s the monitor tests, always-valid over all
    # looks, whether the active version is worse than its margins on client traffic.
    auto_rollback: bool = True
    auto_rollback_s: float = 60.0
    auto_rollback_control_share: float = Field(default=0.1, ge=0.0, le=0.5)
    auto_rollback_horizon_h: float = Field(default=168.0, ge=0.0)
    auto_rollback_alpha: float = Field(default=0.05, gt=0.0, le=0.2)
    auto_rollback_persist: int = Field(default=3, ge=1)  # consecutive flagged looks
    auto_rollback_min_threads: int = Field(default=20, ge=2)  # per arm
    auto_rollback_min_users: int = Field(default=5, ge=2)  # per arm, users with history
