"""The tables: jobs, their metric rows, artifacts (learned matrices) and outer-loop checkpoints."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    false,
    func,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores naive text; we add the tz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


def _created() -> Any:
    # Python default for ORM inserts (microsecond order), server default for anything else.
    return mapped_column(UTCDateTime(), default=utcnow, server_default=func.now())


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name="ck_jobs_status",
        ),
        UniqueConstraint("owner", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        Index("ix_jobs_owner_created", "owner", "created_at", "id"),
        Index("ix_jobs_status", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid.uuid4)
    owner: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    # The validated ExperimentSpec with every default filled in.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON())
    status: Mapped[str] = mapped_column(String(16), default="queued", server_default="queued")

    # Progress of the outer (meta-training) loop.
    outer_step: Mapped[int] = mapped_column(Integer(), default=0, server_default="0")
    outer_steps: Mapped[int | None] = mapped_column(Integer())

    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, server_default=func.now()
    )
    # When a run message was last sent; a queued job not picked up long after is sent again.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    error: Mapped[str | None] = mapped_column(Text())
    attempts: Mapped[int] = mapped_column(Integer(), default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested: Mapped[bool] = mapped_column(Boolean(), default=False, server_default=false())

    # Idempotency-Key (unique per owner) and the hash of the body first sent with it.
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))

    # Final numbers from the library (learned vs random vs backprop, angles, ...).
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON())


def _job_key() -> Mapped[uuid.UUID]:
    """The owning job's id, part of the row's key; the row goes when the job does."""
    return mapped_column(Uuid(), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)


class Metric(Base):
    """One row per outer step; the key (job, outer_step) makes a replayed report a no-op."""

    __tablename__ = "metrics"

    job_id: Mapped[uuid.UUID] = _job_key()
    outer_step: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=False)
    values: Mapped[dict[str, Any]] = mapped_column(JSON())
    created_at: Mapped[datetime] = _created()


class Artifact(Base):
    """A named result file of a job, e.g. "feedback": the learned B as safetensors."""

    __tablename__ = "artifacts"

    job_id: Mapped[uuid.UUID] = _job_key()
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    format: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary())
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer())
    # Tensor name -> shape, so a listing need not parse the bytes.
    shapes: Mapped[dict[str, Any]] = mapped_column(JSON())
    created_at: Mapped[datetime] = _created()


class Checkpoint(Base):
    """The latest outer-loop state of a job, so that a re-run resumes instead of starting over."""

    __tablename__ = "checkpoints"

    job_id: Mapped[uuid.UUID] = _job_key()
    outer_step: Mapped[int] = mapped_column(Integer())
    data: Mapped[bytes] = mapped_column(LargeBinary())
    sha256: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, server_default=func.now()
    )
