"""Request and response bodies of the HTTP API (separate from the ORM models in store.models)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from store.models import Job, Metric

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Progress(BaseModel):
    outer_step: int = Field(description="Outer (meta-training) steps done.")
    outer_steps: int | None = Field(description="Outer steps in all.")
    fraction: float | None = Field(description="outer_step / outer_steps, 0..1.")
    eta_seconds: float | None = Field(
        description="Estimated seconds to go, from the time since start and the fraction done."
    )


class JobOut(BaseModel):
    id: uuid.UUID
    name: str
    status: Status
    progress: Progress
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None = Field(description="Why the job failed, one line.")
    summary: dict[str, Any] | None = Field(description="Final numbers, once succeeded.")
    spec: dict[str, Any] = Field(description="The validated spec, defaults filled in.")

    @classmethod
    def of(cls, job: Job, now: datetime | None = None) -> JobOut:
        return cls(
            id=job.id,
            name=job.name,
            status=job.status,  # type: ignore[arg-type]
            progress=progress(job, now or datetime.now(UTC)),
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            error=job.error,
            summary=job.summary,
            spec=job.spec,
        )


def progress(job: Job, now: datetime) -> Progress:
    total = job.outer_steps
    if job.status == "succeeded":
        fraction: float | None = 1.0
    elif total:
        fraction = min(1.0, max(0.0, job.outer_step / total))
    elif total == 0:
        fraction = 0.0
    else:
        fraction = None
    eta: float | None = None
    if job.status == "succeeded":
        eta = 0.0
    elif job.status == "running" and job.started_at is not None and fraction:
        elapsed = max(0.0, (now - job.started_at).total_seconds())
        eta = round(elapsed * (1.0 - fraction) / fraction, 1)
    return Progress(outer_step=job.outer_step, outer_steps=total, fraction=fraction, eta_seconds=eta)


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end.")


class MetricsOut(BaseModel):
    rows: list[dict[str, Any]] = Field(
        description='One row per outer step: {"outer_step", "meta_loss", ...}, in step order.'
    )
    next_since: int | None = Field(description="Pass as ?since= to get only newer rows.")

    @classmethod
    def of(cls, metrics: list[Metric], since: int | None) -> MetricsOut:
        rows = [{"outer_step": m.outer_step, **m.values} for m in metrics]
        return cls(rows=rows, next_since=metrics[-1].outer_step if metrics else since)


class ReportOut(BaseModel):
    id: uuid.UUID
    name: str
    status: Status
    summary: dict[str, Any] | None
    metrics: int = Field(description="Metric rows recorded so far.")
    last_metrics: dict[str, Any] | None = Field(description="The latest metric row.")
    plots: list[str] = Field(description="Names for GET /v1/jobs/{id}/plots/{name}.png.")


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ok"] = "ok"
    checks: dict[str, str]
