"""The API's job queries: idempotent submit, stable cursor pages, cancel, metrics since a step."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from optfb.spec.presets import preset
from store import runs
from store.jobs import (
    CursorError,
    IdempotencyConflict,
    create_job,
    get_job,
    list_jobs,
    metrics_since,
    request_cancel,
)
from store.models import Job, utcnow

NewJob = Callable[..., uuid.UUID]


def test_create_job_fills_the_spec_and_progress(session: Session) -> None:
    job, created = create_job(session, owner="alice", spec=preset("tiny"))
    assert created and job.status == "queued"
    assert (job.name, job.outer_steps, job.outer_step) == ("tiny", 3, 0)
    assert job.spec["inner"]["momentum"] == 0.9  # defaults are stored with the spec
    assert job.created_at.tzinfo is not None


def test_idempotency_key_is_per_owner_and_checks_the_body(session: Session) -> None:
    spec = preset("tiny")
    first, created = create_job(session, owner="alice", spec=spec, idempotency_key="k1", request_hash="h1")
    again, created_again = create_job(
        session, owner="alice", spec=spec, idempotency_key="k1", request_hash="h1"
    )
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyConflict, match="k1"):
        create_job(session, owner="alice", spec=spec, idempotency_key="k1", request_hash="h2")
    other, created_other = create_job(
        session, owner="bob", spec=spec, idempotency_key="k1", request_hash="h2"
    )
    assert created_other and other.id != first.id


def test_get_job_hides_other_owners_and_bad_ids(session: Session, new_job: NewJob) -> None:
    job_id = new_job(owner="alice")
    assert get_job(session, job_id=job_id, owner="alice") is not None
    assert get_job(session, job_id=str(job_id), owner="bob") is None
    assert get_job(session, job_id="not-a-uuid") is None


def test_cursor_pages_are_newest_first_and_stable_under_equal_times(
    session: Session, new_job: NewJob
) -> None:
    ids = [new_job(owner="alice") for _ in range(5)]
    new_job(owner="bob")
    # The three middle jobs share one creation time: the id (descending) breaks the tie.
    session.execute(update(Job).where(Job.id.in_(ids[1:4])).values(created_at=utcnow()))
    session.execute(update(Job).where(Job.id == ids[4]).values(created_at=utcnow()))
    session.commit()
    expected = [ids[4], *sorted(ids[1:4], key=str, reverse=True), ids[0]]

    seen: list[uuid.UUID] = []
    cursor = None
    for _ in range(10):
        page = list_jobs(session, owner="alice", limit=2, cursor=cursor)
        seen += [job.id for job in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected


def test_list_filters_by_status_and_rejects_bad_input(session: Session, new_job: NewJob) -> None:
    running, queued = new_job(), new_job()
    runs.claim_job(session, job_id=running, worker="w")
    assert [j.id for j in list_jobs(session, owner="alice", status="running").items] == [running]
    assert [j.id for j in list_jobs(session, owner="alice", status="queued").items] == [queued]
    with pytest.raises(ValueError, match="status must be one of"):
        list_jobs(session, owner="alice", status="done")
    with pytest.raises(CursorError):
        list_jobs(session, owner="alice", cursor="bogus!")


def test_cancel_is_idempotent(session: Session, new_job: NewJob) -> None:
    queued, running, finished = new_job(), new_job(), new_job()
    for job_id in (running, finished):
        runs.claim_job(session, job_id=job_id, worker="w")
    runs.finish_job(session, job_id=finished, worker="w", summary={})
    for _ in range(2):
        assert (job := request_cancel(session, job_id=queued)) is not None
        assert job.status == "cancelled"
        assert (job := request_cancel(session, job_id=running)) is not None
        assert job.status == "running" and job.cancel_requested
        assert (job := request_cancel(session, job_id=finished)) is not None
        assert job.status == "succeeded"
    assert request_cancel(session, job_id=queued, owner="mallory") is None


def test_metrics_since_returns_later_steps_in_order(session: Session, new_job: NewJob) -> None:
    job_id = new_job()
    rows = [{"outer_step": s, "meta_loss": float(s)} for s in (2, 0, 1, 3)]
    runs.add_metrics(session, job_id=job_id, rows=rows)
    assert [m.outer_step for m in metrics_since(session, job_id=job_id)] == [0, 1, 2, 3]
    assert [m.outer_step for m in metrics_since(session, job_id=job_id, since=1)] == [2, 3]
    assert metrics_since(session, job_id=job_id, since=3) == []
