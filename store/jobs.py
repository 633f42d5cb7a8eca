"""Job reads and writes for the API: submit (idempotent), fetch, list by cursor, cancel, results."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from optfb.spec import ExperimentSpec
from store.models import JOB_STATUSES, Artifact, Job, Metric, utcnow

MAX_PAGE = 200


class IdempotencyConflict(Exception):
    """An Idempotency-Key was reused with a different request body."""

    def __init__(self, key: str, job_id: uuid.UUID) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was already used for job {job_id} with a different body; "
            "use a new key for a new request"
        )
        self.key = key
        self.job_id = job_id


class CursorError(ValueError):
    """A pagination cursor that this service did not issue."""


@dataclass(frozen=True)
class JobPage:
    items: list[Job]
    next_cursor: str | None


def as_uuid(job_id: uuid.UUID | str) -> uuid.UUID:
    """A job id from its text form; ValueError if it is not a UUID."""
    return job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))


def create_job(
    session: Session,
    *,
    owner: str,
    spec: ExperimentSpec,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> tuple[Job, bool]:
    """Insert a queued job and commit. Returns (job, created); with a key seen before and the same
    request_hash, the earlier job and False. Raises IdempotencyConflict if the hash differs."""
    if idempotency_key is not None:
        earlier = _by_key(session, owner=owner, key=idempotency_key, request_hash=request_hash)
        if earlier is not None:
            return earlier, False
    job = Job(
        owner=owner,
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        status="queued",
        outer_steps=spec.outer.steps if spec.meta_trained else 0,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    session.add(job)
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request with the same key won the insert; answer as it did.
        session.rollback()
        if idempotency_key is None:
            raise
        earlier = _by_key(session, owner=owner, key=idempotency_key, request_hash=request_hash)
        if earlier is None:
            raise
        return earlier, False
    return job, True


def _by_key(session: Session, *, owner: str, key: str, request_hash: str | None) -> Job | None:
    job = session.scalars(select(Job).where(Job.owner == owner, Job.idempotency_key == key)).one_or_none()
    if job is not None and job.request_hash != request_hash:
        raise IdempotencyConflict(key, job.id)
    return job


def get_job(session: Session, *, job_id: uuid.UUID | str, owner: str | None = None) -> Job | None:
    """The job, or None if it does not exist (or belongs to another owner, when one is given)."""
    try:
        key = as_uuid(job_id)
    except ValueError:
        return None
    query = select(Job).where(Job.id == key).execution_options(populate_existing=True)
    if owner is not None:
        query = query.where(Job.owner == owner)
    return session.scalars(query).one_or_none()


def encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), str(job.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise ValueError("naive time")
        return when, uuid.UUID(job_id)
    except (binascii.Error, UnicodeDecodeError, TypeError, ValueError) as exc:
        raise CursorError("cursor is not one this service issued; start again without it") from exc


def list_jobs(
    session: Session,
    *,
    owner: str,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> JobPage:
    """The owner's jobs newest first, ordered by (created_at, id) descending so that pages stay
    stable when timestamps tie. Raises CursorError / ValueError for a bad cursor or status."""
    if status is not None and status not in JOB_STATUSES:
        raise ValueError(f"status must be one of {', '.join(JOB_STATUSES)}")
    limit = max(1, min(limit, MAX_PAGE))
    query = select(Job).where(Job.owner == owner)
    if status is not None:
        query = query.where(Job.status == status)
    if cursor is not None:
        created, last_id = decode_cursor(cursor)
        query = query.where(or_(Job.created_at < created, and_(Job.created_at == created, Job.id < last_id)))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    items = rows[:limit]
    return JobPage(items=items, next_cursor=encode_cursor(items[-1]) if more else None)


def request_cancel(session: Session, *, job_id: uuid.UUID | str, owner: str | None = None) -> Job | None:
    """Ask for a job to stop and commit: a queued job is cancelled at once, a running one is
    flagged for its worker to stop at the next outer step, a finished one is left alone."""
    job = get_job(session, job_id=job_id, owner=owner)
    if job is None:
        return None
    now = utcnow()
    session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == "queued")
        .values(status="cancelled", cancel_requested=True, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == "running")
        .values(cancel_requested=True)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return get_job(session, job_id=job.id)


def metrics_since(
    session: Session, *, job_id: uuid.UUID, since: int | None = None, limit: int = 1000
) -> list[Metric]:
    """Metric rows with outer_step > since (all when since is None), in step order."""
    query = select(Metric).where(Metric.job_id == job_id)
    if since is not None:
        query = query.where(Metric.outer_step > since)
    return list(session.scalars(query.order_by(Metric.outer_step).limit(limit)))


def metrics_summary(session: Session, *, job_id: uuid.UUID) -> tuple[int, Metric | None]:
    """How many metric rows the job has, and its latest one."""
    count = session.scalar(select(func.count()).select_from(Metric).where(Metric.job_id == job_id)) or 0
    last = session.scalars(
        select(Metric).where(Metric.job_id == job_id).order_by(Metric.outer_step.desc()).limit(1)
    ).first()
    return count, last


def get_artifact(session: Session, *, job_id: uuid.UUID, name: str) -> Artifact | None:
    return session.get(Artifact, (job_id, name))


def queued_job_ids(
    session: Session, *, older_than: timedelta | None = None, unsent_after: timedelta | None = None
) -> list[uuid.UUID]:
    """Queued jobs that need a run message: all of them, or only those whose last message (or
    creation, if none was sent) is older than `older_than` — that message may have been lost —
    and, sooner, those created over `unsent_after` ago whose message was never sent at all."""
    query = select(Job.id).where(Job.status == "queued")
    if older_than is not None:
        now = utcnow()
        due = func.coalesce(Job.enqueued_at, Job.created_at) < now - older_than
        if unsent_after is not None:
            due = or_(due, and_(Job.enqueued_at.is_(None), Job.created_at < now - unsent_after))
        query = query.where(due)
    return list(session.scalars(query.order_by(Job.created_at)))


def mark_enqueued(session: Session, *, job_ids: list[uuid.UUID]) -> None:
    """Record that run messages for these jobs were just sent, and commit."""
    if job_ids:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids))
            .values(enqueued_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    session.commit()
