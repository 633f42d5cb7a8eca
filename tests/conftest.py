"""Fixtures shared by every test: where the real PostgreSQL and Redis are, and whether they must be.

Tests that need a server use the `postgres_url` / `redis_url` fixtures. They skip with the reason
when the server is unreachable, except when OPTFB_REQUIRE_SERVICES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get(
    "OPTFB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
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
