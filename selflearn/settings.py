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
