"""/v1/jobs: submit a spec (idempotently), list, fetch and cancel jobs."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import ValidationError

from api.deps import OwnerDep, QueueDep, SessionDep, SettingsDep
from api.problems import PROBLEM, Problem, field_errors
from api.schemas import JobList, JobOut, Status
from optfb.spec import ExperimentSpec, format_validation_error
from store import jobs
from store.models import Job

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@dataclass(frozen=True)
class Submitted:
    spec: ExperimentSpec
    body_hash: str


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        f"the spec is larger than the limit of {limit} bytes (OPTFB_MAX_SPEC_BYTES)",
        kind="spec-too-large",
        limit=limit,
    )


async def read_spec(request: Request, settings: SettingsDep, _owner: OwnerDep) -> Submitted:
    """The request body as a validated spec, read no further than max_spec_bytes. The caller is
    authenticated first (OwnerDep): a stranger learns nothing from the body's validation."""
    limit = settings.max_spec_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    if not body.strip():
        raise Problem(400, "the request body is empty; send an experiment spec as JSON")
    try:
        obj: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}", kind="malformed-json") from exc
    try:
        spec = ExperimentSpec.model_validate(obj)
    except ValidationError as exc:
        raise Problem(
            422,
            format_validation_error(exc),
            kind="invalid-spec",
            title="Invalid experiment spec",
            errors=field_errors(exc.errors()),
        ) from exc
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return Submitted(spec=spec, body_hash=hashlib.sha256(canonical.encode()).hexdigest())


SpecDep = Annotated[Submitted, Depends(read_spec)]


def owned_job(job_id: str, session: SessionDep, owner: OwnerDep) -> Job:
    """The caller's job from the path, or 404 (for unknown, foreign and malformed ids alike)."""
    job = jobs.get_job(session, job_id=job_id, owner=owner)
    if job is None:
        raise Problem(404, f"there is no job {job_id}", kind="job-not-found")
    return job


JobDep = Annotated[Job, Depends(owned_job)]


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    summary="Submit an experiment spec",
    responses={
        200: {"description": "The job made earlier with the same Idempotency-Key and body."},
        400: PROBLEM,
        413: PROBLEM,
        422: PROBLEM,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExperimentSpec"}}},
        }
    },
)
def submit_job(
    submitted: SpecDep,
    session: SessionDep,
    owner: OwnerDep,
    queue: QueueDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> JobOut:
    try:
        job, created = jobs.create_job(
            session,
            owner=owner,
            spec=submitted.spec,
            idempotency_key=idempotency_key,
            request_hash=submitted.body_hash,
        )
    except jobs.IdempotencyConflict as exc:
        raise Problem(422, str(exc), kind="idempotency-key-reused", job_id=str(exc.job_id)) from exc
    # The row is committed: only now ring the worker's doorbell. A retry of a request whose
    # message could not be sent tries again.
    if created or (job.status == "queued" and job.enqueued_at is None):
        try:
            queue.enqueue(job.id)
        except Exception:
            # The job stays queued; the worker's sweep re-sends messages that were never sent.
            log.exception("job %s: could not reach the broker; it will be re-sent", job.id)
        else:
            jobs.mark_enqueued(session, job_ids=[job.id])
    response.status_code = 202 if created else 200
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return JobOut.of(job)


@router.get("", response_model=JobList, summary="List jobs, newest first")
def list_jobs(
    session: SessionDep,
    owner: OwnerDep,
    limit: Annotated[int, Query(ge=1, le=jobs.MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    status: Status | None = None,
) -> JobList:
    try:
        page = jobs.list_jobs(session, owner=owner, status=status, limit=limit, cursor=cursor)
    except jobs.CursorError as exc:
        raise Problem(
            422,
            f"query.cursor: {exc}",
            kind="invalid-request",
            title="Invalid request",
            errors=[{"field": "query.cursor", "message": str(exc)}],
        ) from exc
    return JobList(items=[JobOut.of(job) for job in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses={404: PROBLEM})
def get_job(job: JobDep) -> JobOut:
    return JobOut.of(job)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses={404: PROBLEM},
    summary="Cancel a job (idempotent)",
    description="A queued job is cancelled at once; a running one stops at its next outer step.",
)
def cancel_job(job: JobDep, session: SessionDep) -> JobOut:
    updated = jobs.request_cancel(session, job_id=job.id)
    assert updated is not None
    return JobOut.of(updated)
