"""Request dependencies: settings, a database session per request, the caller's owner name."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.problems import Problem
from api.queue import JobQueue
from store.config import Settings

LOCAL_OWNER = "local"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessionmaker() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_queue(request: Request) -> JobQueue:
    queue: JobQueue = request.app.state.queue
    return queue


QueueDep = Annotated[JobQueue, Depends(get_queue)]


def current_owner(request: Request, settings: SettingsDep) -> str:
    """Local mode: everyone is "local". Production: the owner of the bearer token."""
    if settings.mode == "local":
        return LOCAL_OWNER
    challenge = {"WWW-Authenticate": 'Bearer realm="optfb"'}
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401,
            "send Authorization: Bearer <token>; tokens are configured in OPTFB_API_TOKENS",
            kind="unauthorized",
            headers=challenge,
        )
    owner = None
    for known, name in request.app.state.token_owners.items():
        # Compare every token in constant time, so timing does not reveal a prefix.
        if hmac.compare_digest(known.encode(), token.strip().encode()):
            owner = name
    if owner is None:
        raise Problem(401, "the bearer token is not valid", kind="unauthorized", headers=challenge)
    return owner


OwnerDep = Annotated[str, Depends(current_owner)]
