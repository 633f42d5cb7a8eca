"""API fixtures: a TestClient on a fresh migrated database, with the broker in a temporary folder."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from api.app import create_app
from optfb.spec.presets import PRESETS
from store.db import make_engine, make_sessionmaker
from tests.api.helpers import MakeClient, settings_for


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[MakeClient]:
    """Build a client for a database URL and settings overrides; closed at the end of the test."""
    clients: list[TestClient] = []

    def make(database_url: str, **overrides: Any) -> TestClient:
        settings = settings_for(database_url, tmp_path / "data", **overrides)
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: MakeClient, database_url: str) -> TestClient:
    """Local mode on SQLite and on PostgreSQL, filesystem broker under tmp_path."""
    return make_client(database_url)


@pytest.fixture
def sqlite_client(make_client: MakeClient, sqlite_database_url: str) -> TestClient:
    return make_client(sqlite_database_url)


@pytest.fixture
def db(client: TestClient) -> Iterator[Session]:
    """A session on the client's database, for setting up job states as a worker would."""
    engine = make_engine(client.app.state.settings.resolved_database_url)  # type: ignore[attr-defined]
    with make_sessionmaker(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture
def tiny() -> dict[str, Any]:
    return json.loads(json.dumps(PRESETS["tiny"]))


@pytest.fixture
def submit(client: TestClient, tiny: dict[str, Any]) -> Callable[..., uuid.UUID]:
    def post(name: str = "tiny") -> uuid.UUID:
        response = client.post("/v1/jobs", json={**tiny, "name": name})
        assert response.status_code == 202, response.text
        return uuid.UUID(response.json()["id"])

    return post
