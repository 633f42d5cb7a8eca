"""The schema comes from `alembic upgrade head`, on a fresh SQLite file and a fresh PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from store.db import alembic_config, make_engine, migrate
from store.models import Base

REPO = Path(__file__).resolve().parents[2]
TABLES = {"jobs", "metrics", "artifacts", "checkpoints", "alembic_version"}


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def test_fresh_database_is_at_head_and_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as connection:
        assert TABLES <= set(inspect(connection).get_table_names())
        assert MigrationContext.configure(connection).get_current_revision() == _head()
        # The ORM models and the migrations describe the same schema.
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == []
    engine.dispose()
    migrate(database_url)  # a second upgrade is a no-op


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(sqlite_database_url: str) -> None:
    engine = make_engine(sqlite_database_url)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 1000
    engine.dispose()


def test_migrate_works_from_any_working_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-c", f"from store.db import migrate; migrate({url!r})"],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=60,
    )
    engine = make_engine(url)
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == _head()
    engine.dispose()
