"""What a worker writes while it runs a job: every state change is one conditional UPDATE.

Each function commits its own transaction, so a claim or a heartbeat is visible to others at once.
A transition happens only if the row is still in the state it expects (`UPDATE ... WHERE status =
'queued'` and a rowcount check), so a message delivered twice cannot run a job twice and a worker
that lost its job (re-queued as stale, or cancelled) learns so from a False return.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from store.jobs import as_uuid, queued_job_ids
from store.models import Artifact, Checkpoint, Job, Metric, utcnow

MAX_ERROR_CHARS = 2000
# A queued job whose message the API could not send (the broker was down) is re-sent this soon.
UNSENT_AFTER = timedelta(seconds=15)


def jsonable(value: Any) -> Any:
    """Plain JSON: non-finite floats become None (PostgreSQL's JSON refuses NaN), numpy and torch
    scalars become Python numbers, tuples become lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy / torch scalars and arrays
        return jsonable(value.tolist())
    if hasattr(value, "item"):
        return jsonable(value.item())
    return str(value)


def _transition(session: Session, *conditions: ColumnElement[bool], **values: Any) -> bool:
    result = session.execute(
        update(Job).where(*conditions).values(**values).execution_options(synchronize_session=False)
    )
    session.commit()
    return _rowcount(result) == 1


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)


def _owned(job_id: uuid.UUID | str, worker: str) -> tuple[ColumnElement[bool], ...]:
    """The guard of every write a worker makes: the job still runs, and under this worker."""
    return (Job.id == as_uuid(job_id), Job.status == "running", Job.worker == worker)


def _end(
    session: Session, job_id: uuid.UUID | str, worker: str, *guard: ColumnElement[bool], **values: Any
) -> bool:
    """running -> a final status for this worker's job; an ended job needs no checkpoint."""
    done = _transition(session, *_owned(job_id, worker), *guard, finished_at=utcnow(), **values)
    if done:
        _drop_checkpoint(session, as_uuid(job_id))
    return done


def claim_job(session: Session, *, job_id: uuid.UUID | str, worker: str) -> bool:
    """queued -> running for this worker; False if someone else has it or it is not queued."""
    now = utcnow()
    return _transition(
        session,
        Job.id == as_uuid(job_id),
        Job.status == "queued",
        Job.cancel_requested.is_(False),
        status="running",
        worker=worker,
        started_at=func.coalesce(Job.started_at, now),
        heartbeat_at=now,
        attempts=Job.attempts + 1,
        error=None,
    )


def heartbeat(
    session: Session,
    *,
    job_id: uuid.UUID | str,
    worker: str,
    outer_step: int,
    outer_steps: int | None = None,
) -> bool:
    """Record progress and liveness; False if the job no longer runs under this worker (stop)."""
    values: dict[str, Any] = {"heartbeat_at": utcnow(), "outer_step": outer_step}
    if outer_steps is not None:
        values["outer_steps"] = outer_steps
    return _transition(session, *_owned(job_id, worker), **values)


def is_cancel_requested(session: Session, *, job_id: uuid.UUID | str) -> bool:
    """True if the job was asked to stop, is no longer running, or no longer exists."""
    row = session.execute(
        select(Job.cancel_requested, Job.status).where(Job.id == as_uuid(job_id))
    ).one_or_none()
    session.commit()  # end the read transaction: the next poll must see new writes
    return row is None or bool(row.cancel_requested) or row.status != "running"


def _insert(session: Session, model: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"no upsert for database dialect {dialect!r}")


def add_metrics(session: Session, *, job_id: uuid.UUID | str, rows: list[dict[str, Any]]) -> int:
    """Store metric rows (each with an "outer_step"); a step stored before is skipped, so a
    resumed or replayed run adds no duplicates. Returns how many rows were new."""
    key = as_uuid(job_id)
    values = []
    for row in rows:
        if "outer_step" not in row:
            raise ValueError("every metric row needs an outer_step")
        rest = {k: v for k, v in row.items() if k != "outer_step"}
        values.append({"job_id": key, "outer_step": int(row["outer_step"]), "values": jsonable(rest)})
    if not values:
        return 0
    statement = _insert(session, Metric).values(values).on_conflict_do_nothing()
    # RETURNING lists the rows actually inserted (rowcount is unreliable for multi-row inserts).
    inserted = session.execute(statement.returning(Metric.outer_step)).all()
    session.commit()
    return len(inserted)


def save_checkpoint(
    session: Session, *, job_id: uuid.UUID | str, worker: str, outer_step: int, data: bytes
) -> bool:
    """Replace the job's checkpoint with the state after `outer_step` outer steps, if the job still
    runs under this worker (False otherwise: a worker that lost its job must not overwrite the
    checkpoint of the one that has it now). The job row is locked for the write where the
    database can (PostgreSQL), so a concurrent re-queue waits for it."""
    owned = session.execute(select(Job.id).where(*_owned(job_id, worker)).with_for_update()).first()
    if owned is None:
        session.rollback()
        return False
    values = {
        "job_id": as_uuid(job_id),
        "outer_step": outer_step,
        "data": data,
        "sha256": hashlib.sha256(data).hexdigest(),
        "updated_at": utcnow(),
    }
    statement = _insert(session, Checkpoint).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["job_id"],
        set_={k: statement.excluded[k] for k in ("outer_step", "data", "sha256", "updated_at")},
    )
    session.execute(statement)
    session.commit()
    return True


def load_checkpoint(session: Session, *, job_id: uuid.UUID | str) -> tuple[int, bytes] | None:
    """(outer_step, bytes) of the latest checkpoint, None if none; ValueError if corrupted."""
    checkpoint = session.get(Checkpoint, as_uuid(job_id), populate_existing=True)
    session.commit()
    if checkpoint is None:
        return None
    if hashlib.sha256(checkpoint.data).hexdigest() != checkpoint.sha256:
        raise ValueError(f"checkpoint of job {job_id} does not match its sha256")
    return checkpoint.outer_step, checkpoint.data


def save_artifact(
    session: Session,
    *,
    job_id: uuid.UUID | str,
    name: str,
    format: str,
    data: bytes,
    shapes: dict[str, Any],
) -> str:
    """Store (or replace) the job's artifact `name`; returns its sha256."""
    digest = hashlib.sha256(data).hexdigest()
    values = {
        "job_id": as_uuid(job_id),
        "name": name,
        "format": format,
        "data": data,
        "sha256": digest,
        "size": len(data),
        "shapes": jsonable(shapes),
        "created_at": utcnow(),
    }
    statement = _insert(session, Artifact).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["job_id", "name"],
        set_={k: statement.excluded[k] for k in ("format", "data", "sha256", "size", "shapes", "created_at")},
    )
    session.execute(statement)
    session.commit()
    return digest


def finish_job(session: Session, *, job_id: uuid.UUID | str, worker: str, summary: dict[str, Any]) -> bool:
    """running -> succeeded with the summary, unless a cancel was asked for meanwhile (False: the
    caller marks it cancelled); the checkpoint is no longer needed and is dropped."""
    return _end(
        session,
        job_id,
        worker,
        Job.cancel_requested.is_(False),
        status="succeeded",
        summary=jsonable(summary),
        outer_step=Job.outer_steps,
    )


def _drop_checkpoint(session: Session, job_id: uuid.UUID) -> None:
    """A job that has ended needs no checkpoint: its bytes would only fill the database."""
    session.execute(delete(Checkpoint).where(Checkpoint.job_id == job_id))
    session.commit()


def one_line(error: str) -> str:
    text = " ".join(str(error).split()) or "failed without a message"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def fail_job(session: Session, *, job_id: uuid.UUID | str, worker: str, error: str) -> bool:
    """running -> failed with a one-line reason a person can act on."""
    return _end(session, job_id, worker, status="failed", error=one_line(error))


def mark_cancelled(session: Session, *, job_id: uuid.UUID | str, worker: str) -> bool:
    """running -> cancelled, once the worker has stopped at a cancel request."""
    return _end(session, job_id, worker, status="cancelled")


def release_job(session: Session, *, job_id: uuid.UUID | str, worker: str) -> bool:
    """running -> queued, for a worker shutting down mid-job; the caller re-enqueues it. A hand-back
    is not a failed attempt, so it does not count towards max_attempts."""
    return _transition(
        session,
        *_owned(job_id, worker),
        status="queued",
        worker=None,
        heartbeat_at=None,
        enqueued_at=None,
        attempts=Job.attempts - 1,
    )


def requeue_stale(
    session: Session,
    *,
    stale_after: timedelta,
    max_attempts: int,
    lost_after: timedelta | None = None,
) -> list[uuid.UUID]:
    """Recover jobs whose worker died or whose message was lost; returns the ids to enqueue.

    A running job without a heartbeat for `stale_after` goes back to queued — or to failed once it
    has had `max_attempts` runs, or to cancelled if that was asked for. Queued jobs whose message
    is older than `lost_after` (default `stale_after`) are returned as well. The caller sends their
    messages and marks each one enqueued (store.jobs.mark_enqueued) once its message is sent.
    """
    now = utcnow()
    stale = session.execute(
        select(Job.id, Job.attempts, Job.worker, Job.heartbeat_at, Job.cancel_requested).where(
            Job.status == "running", Job.heartbeat_at < now - stale_after
        )
    ).all()
    requeued = []
    for row in stale:
        # The heartbeat we saw is part of the guard: a worker that beats meanwhile keeps its job.
        guard = (Job.id == row.id, Job.status == "running", Job.heartbeat_at == row.heartbeat_at)
        silent = f"worker {row.worker} sent no heartbeat for over {stale_after.total_seconds():g}s"
        if row.cancel_requested:
            if _transition(session, *guard, status="cancelled", finished_at=now):
                _drop_checkpoint(session, row.id)
        elif row.attempts >= max_attempts:
            if _transition(
                session,
                *guard,
                status="failed",
                finished_at=now,
                error=f"gave up after {row.attempts} attempts: {silent} (killed, out of memory, "
                "or its host went away); resubmit the spec to try again",
            ):
                _drop_checkpoint(session, row.id)
        elif _transition(session, *guard, status="queued", worker=None, heartbeat_at=None, enqueued_at=None):
            requeued.append(row.id)
    lost = queued_job_ids(
        session, older_than=stale_after if lost_after is None else lost_after, unsent_after=UNSENT_AFTER
    )
    return requeued + [job_id for job_id in lost if job_id not in requeued]
