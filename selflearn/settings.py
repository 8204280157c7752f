"""Self-learning settings (MAAS_SELFLEARN_* env vars), built when the extension mounts."""

from __future__ import annotations

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
    # Automatic rollback: every auto_rollback_s, compare the active version's last
    # auto_rollback_window runs with the last good version's (guardrails: teacher/guardrails.py)
    auto_rollback: bool = True
    auto_rollback_s: float = 60.0
    auto_rollback_window: int = 50
