"""Deployment settings (MAAS_* env vars, .env file). Built by the CLI or a test, never at import."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("maas"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAAS_", env_file=".env", extra="ignore")

    # Storage: an external Postgres when set, else an embedded one under data_dir/pg.
    database_url: SecretStr | None = None
    data_dir: Path = Field(default_factory=default_data_dir)
    pool_min: int = 2
    pool_max: int = 10
    # the assembler's searches run on a pool of their own (generic plans: maas/db/pool.py)
    search_pool_max: int = Field(default=4, ge=1)
    db_timeout_s: float = 5.0
    migrate_on_start: bool = True

    host: str = "127.0.0.1"
    port: int = 8000
    admin_key: SecretStr | None = None

    # LLM: no base_url and no api_key means the honest offline mode.
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 30.0
    llm_max_retries: int = 2
    llm_retry_after_cap_s: float = 10.0
    stage_deadline_s: float = 60.0
    token_encoding: str = "cl100k_base"

    # auto = local when the `local-embeddings` extra is installed (the README's install), else none.
    embedder: Literal["auto", "none", "local", "openai"] = "auto"
    embedding_model: str = "text-embedding-3-small"
    embedding_base_url: str | None = None
    embedding_api_key: SecretStr | None = None
    # Torch threads of the local model per batch; 0 = every CPU but one, from one to four (a
    # bigger machine embeds an import faster; on 2 cores, two one-thread batches, below).
    embed_threads: int = Field(default=0, ge=0, le=256)
    # Batches the local model encodes at once, each on its own copy of the model (~90 MB); 0 = as
    # many as the CPUs hold at embed_threads each, one or two (embed.model_slots).
    embed_batches: int = Field(default=0, ge=0, le=16)

    # Orchestrator: lease L, poll P, attempts A (see docs/operations.md).
    lease_s: float = 60.0
    poll_s: float = 2.0
    max_attempts: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    analyzer_concurrency: int = 2
    assembler_concurrency: int = 2
    # Building contexts (the offline analysis and each of the assembler's searches: CPU, not
    # waiting on an LLM) at most this many at once in the process, both lanes, shared fairly by
    # tenant (maas/runtime/fair.py): a tenant's burst waits for its own turns instead of queueing
    # the others behind it. Two: one tenant's burst beside another's request measured best.
    context_slots: int = Field(default=2, ge=1)
    responder_concurrency: int = 4
    # three: while one worker writes its slice and one extracts, a third keeps the local model
    # busy (LoCoMo ingest on 2 cores: 2 workers 15.5, 3 workers 17.4 turns/s; 4: 17.6)
    archivist_concurrency: int = 3
    # An archive job archives its range in slices of at most this many messages and characters
    # (at least one message), each its own claim, commit and deadline, the job queued again
    # between them; a failed job is queued again after archive_retry_s, doubling each time (at
    # most a day), or at once when its thread is closed again.
    archive_slice_messages: int = Field(default=200, ge=1)
    archive_slice_chars: int = Field(default=32_000, ge=1)
    archive_retry_s: float = Field(default=600.0, gt=0)
    # Per-turn archiving (issue 17): a completed chat run queues its turn for the archivist at
    # once (maas.queue_turn_archive). Offline each turn is its own job; with an LLM a thread's
    # turns batch until turn_batch_turns user turns or turn_batch_wait_s seconds (IMPACTS.md).
    turn_archive: bool = True
    turn_batch_turns: int = Field(default=4, ge=1, le=100)
    turn_batch_wait_s: float = Field(default=10.0, ge=0, le=3600)
    # Requests waiting for their answer drive their own run through the stages, this many at
    # once (more wait for the workers); 0 = every run goes through the workers (ADR 0010).
    express_concurrency: int = Field(default=64, ge=0)
    # ... of which one user (API key) may hold at most this many: a flood of waiting requests
    # from one tenant leaves the other slots to the others (its excess waits for the workers).
    express_per_user: int = Field(default=16, ge=1)
    probe_s: float = 10.0
    shutdown_grace_s: float = 10.0
    chat_wait_s: float = 120.0
    idle_scan_s: float = 30.0
    retention_days: float = 30.0
    cleanup_s: float = 3600.0
    log_level: str = "INFO"
    # Impact-factor overrides as JSON, e.g. MAAS_PARAMS='{"context.max_tokens": 800}' (IMPACTS.md).
    params: dict[str, float | int | bool] = Field(default_factory=dict)

    # HTTP limits: request bodies over max_body_bytes get 413; each API key may make
    # rate_limit_per_min requests a minute (bursts up to rate_limit_burst), else 429.
    max_body_bytes: int = 1_048_576
    body_timeout_s: float = Field(default=30.0, gt=0)  # the whole body, from the request's start
    max_message_chars: int = 32_000  # a chat message or /v1/context query (422 above it)
    rate_limit_per_min: float = 600.0
    rate_limit_burst: int = 60
    rate_limit_buckets: int = Field(default=10_000, ge=1)  # keys tracked, least recent out
    # Connections (maas serve): each request's headers must arrive within header_timeout_s of
    # connecting or of the previous response; an idle keep-alive connection closes after
    # keep_alive_s; past max_connections a new connection closes the longest-idle one.
    header_timeout_s: float = Field(default=10.0, gt=0)
    keep_alive_s: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=1000, ge=1)
    # Web UI sessions (the login form's cookie) expire this long after login. Login attempts
    # (each one a key lookup) are limited per client address: login_attempts_per_min, in bursts
    # of as many; 0 = no limit.
    session_hours: float = Field(default=168.0, gt=0)
    login_attempts_per_min: float = Field(default=10.0, ge=0)

    @property
    def offline(self) -> bool:
        return self.llm_base_url is None and self.llm_api_key is None

    @property
    def mode(self) -> str:
        return "offline" if self.offline else "llm"

    @property
    def turn_archive_settings(self) -> dict[str, str]:
        """Session settings of the service's pools, read by maas.queue_turn_archive."""
        return {
            "maas.turn_archive": "on" if self.turn_archive else "off",
            "maas.turn_batch_turns": str(self.turn_batch_turns),
            "maas.turn_batch_wait_s": str(self.turn_batch_wait_s),
        }

    @property
    def embedded(self) -> bool:
        return self.database_url is None
