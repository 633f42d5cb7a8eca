"""The API's Celery producer: it sends `optfb.run_job` messages without importing the worker."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

from celery import Celery

from store.config import Settings

# The contract with the worker (worker/celery_app.py consumes these).
TASK_NAME = "optfb.run_job"
QUEUE = "optfb"
BROKER_TIMEOUT_SECONDS = 2.0


class JobQueue:
    """Rings the worker's doorbell; the job itself is already committed in the database."""

    def __init__(self, settings: Settings) -> None:
        self.broker_url = settings.resolved_broker_url
        self.transport_options = settings.broker_transport_options()
        options: dict[str, Any] = dict(self.transport_options)
        if self.broker_url.startswith(("redis://", "rediss://")):
            options |= {
                "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
                "socket_timeout": BROKER_TIMEOUT_SECONDS,
            }
        self.celery = Celery("optfb-api", broker=self.broker_url, set_as_current=False)
        self.celery.conf.update(
            broker_transport_options=options,
            broker_connection_timeout=BROKER_TIMEOUT_SECONDS,
            broker_connection_retry_on_startup=False,
            task_serializer="json",
        )

    def enqueue(self, job_id: uuid.UUID) -> None:
        """Send the run message; raises if the broker cannot take it."""
        self.celery.send_task(
            TASK_NAME,
            args=[str(job_id)],
            queue=QUEUE,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        )

    def check(self) -> None:
        """Raise with a reason if the broker cannot take messages now."""
        if self.broker_url.startswith("filesystem:"):
            folder = Path(self.transport_options["data_folder_out"])
            if not folder.is_dir() or not os.access(folder, os.W_OK):
                raise OSError(f"broker folder {folder} is missing or not writable")
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".ready-", suffix=".tmp"):
                pass
        elif self.broker_url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(
                self.broker_url,
                socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
                socket_timeout=BROKER_TIMEOUT_SECONDS,
            )
            try:
                client.ping()
            finally:
                client.close()
        else:
            with self.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)

    def close(self) -> None:
        self.celery.close()
