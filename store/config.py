"""The service's one configuration object, read from OPTFB_* environment variables."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

FILESYSTEM_BROKER = "filesystem://"


def _default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(BaseSettings):
    """Every knob of the API and the worker; `get_settings()` returns the process-wide instance."""

    model_config = SettingsConfigDict(env_prefix="OPTFB_", extra="ignore")

    # "local": one host, no auth (every request is owner "local"). "production": bearer tokens.
    mode: Literal["local", "production"] = "local"
    # SQLite database and the serverless broker live here unless their URLs are given.
    data_dir: Path = Path("data")

    # Database: None -> sqlite:///{data_dir}/optfb.db; else e.g. postgresql+psycopg://u:p@host/db.
    database_url: str | None = None
    # Celery broker: None -> the filesystem transport under {data_dir}/broker; else redis://host/0.
    broker_url: str | None = None

    # HTTP server.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Comma-separated "token:owner" pairs; required in production mode.
    api_tokens: SecretStr | None = None
    # Largest accepted spec body in bytes.
    max_spec_bytes: int = Field(default=65536, ge=1024)

    # Worker: a running job writes a heartbeat this often; one silent for stale_after_seconds is
    # presumed dead and re-queued, at most max_attempts runs in all.
    heartbeat_seconds: float = Field(default=30, gt=0)
    stale_after_seconds: float = Field(default=300, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    # Save the outer loop's state every this many outer steps, so a re-run resumes.
    checkpoint_every: int = Field(default=10, ge=1)
    # CPU threads torch may use in a worker (None: torch's default, one per core). On a host shared
    # with other work, or for small networks, fewer run faster: a thread that waits for a busy
    # core stalls every small matrix product of the unrolled loop.
    torch_threads: int | None = Field(default=None, ge=1)
    # Name written to jobs.worker when this process claims a job.
    worker_name: str = Field(default_factory=_default_worker_name, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _secure_outside_local(self) -> Settings:
        if self.mode == "production":
            if self.api_tokens is None or not self.api_tokens.get_secret_value().strip():
                raise ValueError(
                    "OPTFB_API_TOKENS is required in production mode: set it to comma-separated "
                    "token:owner pairs (or use OPTFB_MODE=local on a trusted single host)"
                )
        if self.api_tokens is not None:
            self.token_owners()  # fail at start-up, not on the first request
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in data_dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'optfb.db'}"

    @property
    def resolved_broker_url(self) -> str:
        """The Celery broker URL, defaulting to the serverless filesystem transport."""
        return self.broker_url or FILESYSTEM_BROKER

    @property
    def uses_filesystem_broker(self) -> bool:
        return self.resolved_broker_url.startswith("filesystem:")

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    def broker_transport_options(self) -> dict[str, Any]:
        """Celery `broker_transport_options`: the folders of the filesystem transport (created
        here), shared by producer and consumer; empty for any other broker."""
        if not self.uses_filesystem_broker:
            return {}
        queue = self.broker_dir / "queue"
        processed = self.broker_dir / "processed"
        control = self.broker_dir / "control"
        for folder in (queue, processed, control):
            folder.mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "processed_folder": str(processed),
            "control_folder": str(control),
            "store_processed": False,
        }

    def token_owners(self) -> dict[str, str]:
        """Bearer token -> owner, parsed from api_tokens."""
        if self.api_tokens is None:
            return {}
        owners: dict[str, str] = {}
        for pair in self.api_tokens.get_secret_value().split(","):
            if not pair.strip():
                continue
            token, sep, owner = pair.strip().partition(":")
            if not sep or not token.strip() or not owner.strip():
                raise ValueError(
                    "OPTFB_API_TOKENS must be comma-separated token:owner pairs; "
                    "found an entry without both parts"
                )
            owners[token.strip()] = owner.strip()
        return owners


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once; tests call `reset_settings()` after changing env."""
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()
