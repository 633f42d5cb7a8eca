"""Store fixtures: a session on a fresh migrated database and a factory of queued jobs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.orm import Session

from optfb.spec.presets import preset
from store.db import make_engine, make_sessionmaker
from store.jobs import create_job

NewJob = Callable[..., uuid.UUID]


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        yield session
    engine.dispose()


@pytest.fixture
def new_job(session: Session) -> NewJob:
    def make(owner: str = "alice", name: str = "tiny") -> uuid.UUID:
        spec = preset("tiny").model_copy(update={"name": name})
        job, created = create_job(session, owner=owner, spec=spec)
        assert created
        return job.id

    return make
