"""Fixtures shared by every test: where the real PostgreSQL and Redis are, and whether they must be.

Tests that need a server use the `postgres_url` / `redis_url` fixtures. They skip with the reason
when the server is unreachable, except when OPTFB_REQUIRE_SERVICES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get("OPTFB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("OPTFB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRED = os.environ.get("OPTFB_REQUIRE_SERVICES") == "1"


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), 2):
            return True
    except OSError:
        return False


def _server(url: str, port: int, what: str) -> str:
    if not _reachable(url, port):
        message = f"{what} is not reachable at {url} (set OPTFB_TEST_{what.upper()}_URL)"
        if REQUIRED:
            pytest.fail(f"{message}; OPTFB_REQUIRE_SERVICES=1 makes this test mandatory")
        pytest.skip(message)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return _server(POSTGRES_URL, 5432, "postgres")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _server(REDIS_URL, 6379, "redis")


# --- Databases migrated by the real `alembic upgrade head` ---------------------------------------
# `database_url` is a fresh, migrated, empty database for one test, on SQLite and on PostgreSQL.
# PostgreSQL: one uniquely named database is migrated per test session and each test gets a copy
# of it (CREATE DATABASE ... TEMPLATE), dropped afterwards.


def _admin_engine(url: str) -> Any:
    from sqlalchemy import create_engine

    return create_engine(url, isolation_level="AUTOCOMMIT")


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _drop_database(url: str, name: str) -> None:
    from sqlalchemy import text

    from store.db import dispose_engines

    dispose_engines()
    admin = _admin_engine(url)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def postgres_template(postgres_url: str) -> Iterator[str]:
    """The URL of a uniquely named PostgreSQL database, migrated once for this test session."""
    from sqlalchemy import text

    from store.db import migrate

    name = f"optfb_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine(postgres_url)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = _with_database(postgres_url, name)
    try:
        migrate(url)
        yield url
    finally:
        _drop_database(postgres_url, name)


@pytest.fixture
def postgres_database_url(postgres_url: str, postgres_template: str) -> Iterator[str]:
    """A fresh migrated PostgreSQL database for one test (a copy of the session's template)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    template = make_url(postgres_template).database
    name = f"{template}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine(postgres_url)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    admin.dispose()
    try:
        yield _with_database(postgres_url, name)
    finally:
        _drop_database(postgres_url, name)


@pytest.fixture
def sqlite_database_url(tmp_path: Path) -> Iterator[str]:
    """A fresh migrated SQLite file for one test."""
    from store.db import dispose_engines, migrate

    url = f"sqlite:///{tmp_path / 'optfb.db'}"
    migrate(url)
    yield url
    dispose_engines()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh migrated database for one test, once on SQLite and once on PostgreSQL."""
    return str(request.getfixturevalue(f"{request.param}_database_url"))
