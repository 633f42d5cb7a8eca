"""Worker fixtures: a database + broker pair (SQLite + filesystem, PostgreSQL + Redis) and the
real Celery worker processes started against it, killed at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store.config import Settings
from tests.worker.helpers import Backend, redis_db, worker_env


@pytest.fixture(params=["sqlite", "services"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """SQLite + the filesystem transport, or PostgreSQL + Redis, with progress written every 50 ms and a
    checkpoint every 10 outer steps; the workers' own sweeps never fire during a test."""
    data = tmp_path / "data"
    common = {
        "OPTFB_MODE": "local",
        "OPTFB_DATA_DIR": str(data),
        "OPTFB_HEARTBEAT_SECONDS": "0.05",
        "OPTFB_STALE_AFTER_SECONDS": "3600",
        "OPTFB_CHECKPOINT_EVERY": "10",
    }
    if request.param == "sqlite":
        database = request.getfixturevalue("sqlite_database_url")
        env = worker_env(**common, OPTFB_DATABASE_URL=database)
        settings = Settings(data_dir=data, database_url=database)
    else:
        database = request.getfixturevalue("postgres_database_url")
        broker = redis_db(request.getfixturevalue("redis_url"))
        import redis

        client = redis.Redis.from_url(broker)
        client.delete("optfb", "unacked", "unacked_index")  # leftovers of an earlier run
        client.close()
        env = worker_env(**common, OPTFB_DATABASE_URL=database, OPTFB_BROKER_URL=broker)
        settings = Settings(data_dir=data, database_url=database, broker_url=broker)
    logs = tmp_path / "logs"
    logs.mkdir()
    result = Backend(request.param, settings, env, logs)
    try:
        yield result
    finally:
        result.stop_workers()
        result.app.close()
