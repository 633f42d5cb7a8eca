"""The worker's conditional updates: a job is claimed once, progress and results are idempotent."""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from store import runs
from store.jobs import get_job, mark_enqueued, request_cancel
from store.models import Checkpoint, Job, Metric, utcnow

NewJob = Callable[..., uuid.UUID]


def _age_heartbeat(session: Session, job_id: object, seconds: float) -> None:
    session.execute(
        update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
    )
    session.commit()


def _job(session: Session, job_id: object) -> Job:
    job = get_job(session, job_id=str(job_id))
    assert job is not None
    return job


def test_a_job_is_claimed_once(session: Session, new_job: NewJob) -> None:
    job_id = new_job()
    assert runs.claim_job(session, job_id=job_id, worker="w1")
    assert not runs.claim_job(session, job_id=job_id, worker="w2")
    assert not runs.claim_job(session, job_id=str(job_id), worker="w1")
    job = _job(session, job_id)
    assert (job.status, job.worker, job.attempts) == ("running", "w1", 1)
    assert job.started_at is not None and job.started_at.tzinfo is not None
    assert job.heartbeat_at is not None


def test_a_cancelled_job_cannot_be_claimed(session: Session, new_job: NewJob) -> None:
    job_id = new_job()
    request_cancel(session, job_id=job_id)
    assert _job(session, job_id).status == "cancelled"
    assert not runs.claim_job(session, job_id=job_id, worker="w1")


def test_heartbeat_only_for_the_owning_worker(session: Session, new_job: NewJob) -> None:
    job_id = new_job()
    assert not runs.heartbeat(session, job_id=job_id, worker="w1", outer_step=1)  # not claimed
    runs.claim_job(session, job_id=job_id, worker="w1")
    assert runs.heartbeat(session, job_id=job_id, worker="w1", outer_step=2, outer_steps=3)
    assert not runs.heartbeat(session, job_id=job_id, worker="w2", outer_step=3)
    job = _job(session, job_id)
    assert (job.outer_step, job.outer_steps) == (2, 3)


def test_cancel_request_reaches_a_running_worker(session: Session, new_job: NewJob) -> None:
    job_id = new_job()
    runs.claim_job(session, job_id=job_id, worker="w1")
    assert not runs.is_cancel_requested(session, job_id=job_id)
    job = request_cancel(session, job_id=job_id)
    assert job is not None and job.status == "running" and job.cancel_requested
    assert runs.is_cancel_requested(session, job_id=job_id)
    assert runs.mark_cancelled(session, job_id=job_id, worker="w1")
    job = _job(session, job_id)
    assert job.status == "cancelled" and job.finished_at is not None
    assert not runs.mark_cancelled(session, job_id=job_id, worker="w1")


def test_metrics_are_idempotent_per_outer_step(session: Session, new_job: NewJob) -> None:
    job_id = new_job()
    rows = [{"outer_step": s, "meta_loss": 1.0 / (s + 1)} for s in range(3)]
    assert runs.add_metrics(session, job_id=job_id, rows=rows) == 3
    replay = [*rows[1:], {"outer_step": 3, "meta_loss": math.nan}]
    assert runs.add_metrics(session, job_id=job_id, rows=replay) == 1
    stored = session.scalars(select(Metric).where(Metric.job_id == job_id).order_by(Metric.outer_step)).all()
    assert [m.outer_step for m in stored] == [0, 1, 2, 3]
    assert stored[1].values == {"meta_loss": 0.5}
    assert stored[3].values == {"meta_loss": None}  # NaN is not JSON


def test_checkpoint_round_trip_and_dropped_on_success(session: Session, new_job: NewJob) -> None:
    job_id = new_job()
    assert runs.load_checkpoint(session, job_id=job_id) is None
    assert not runs.save_checkpoint(session, job_id=job_id, worker="w1", outer_step=5, data=b"unclaimed")
    assert runs.claim_job(session, job_id=job_id, worker="w1")
    assert runs.save_checkpoint(session, job_id=job_id, worker="w1", outer_step=10, data=b"first")
    assert runs.save_checkpoint(session, job_id=job_id, worker="w1", outer_step=20, data=b"\x00second\xff")
    # a worker that lost the job writes nothing
    assert not runs.save_checkpoint(session, job_id=job_id, worker="w0", outer_step=30, data=b"stale")
    assert runs.load_checkpoint(session, job_id=job_id) == (20, b"\x00second\xff")
    assert session.scalar(select(func.count()).select_from(Checkpoint)) == 1
    runs.claim_job(session, job_id=job_id, worker="w1")
    assert runs.finish_job(session, job_id=job_id, worker="w1", summary={"x": 1})
    assert runs.load_checkpoint(session, job_id=job_id) is None


def test_artifact_stores_sha256_and_replaces(session: Session, new_job: NewJob) -> None:
    from store.jobs import get_artifact

    job_id = new_job()
    data = b"safetensors bytes"
    digest = runs.save_artifact(
        session,
        job_id=job_id,
        name="feedback",
        format="safetensors",
        data=data,
        shapes={"B2": (5, 3)},
    )
    assert digest == hashlib.sha256(data).hexdigest()
    runs.save_artifact(
        session,
        job_id=job_id,
        name="feedback",
        format="safetensors",
        data=b"new",
        shapes={"B2": [5, 3]},
    )
    artifact = get_artifact(session, job_id=job_id, name="feedback")
    assert artifact is not None
    assert (artifact.data, artifact.size) == (b"new", 3)
    assert artifact.sha256 == hashlib.sha256(b"new").hexdigest()
    assert artifact.shapes == {"B2": [5, 3]}


def test_finish_and_fail_need_the_running_worker(session: Session, new_job: NewJob) -> None:
    done, broken = new_job(), new_job()
    assert not runs.finish_job(session, job_id=done, worker="w1", summary={})
    runs.claim_job(session, job_id=done, worker="w1")
    runs.heartbeat(session, job_id=done, worker="w1", outer_step=1, outer_steps=3)
    assert not runs.finish_job(session, job_id=done, worker="w2", summary={})
    assert runs.finish_job(session, job_id=done, worker="w1", summary={"loss": math.inf})
    assert not runs.finish_job(session, job_id=done, worker="w1", summary={})
    job = _job(session, done)
    assert (job.status, job.summary, job.outer_step) == ("succeeded", {"loss": None}, 3)

    runs.claim_job(session, job_id=broken, worker="w1")
    assert runs.fail_job(session, job_id=broken, worker="w1", error="Boom:\n  bad\tthing\n")
    job = _job(session, broken)
    assert (job.status, job.error) == ("failed", "Boom: bad thing")
    assert job.finished_at is not None


def test_requeue_stale_running_jobs(session: Session, new_job: NewJob) -> None:
    stale, fresh, exhausted, cancelling = new_job(), new_job(), new_job(), new_job()
    for job_id in (stale, fresh, exhausted, cancelling):
        assert runs.claim_job(session, job_id=job_id, worker="dead")
    session.execute(update(Job).where(Job.id == exhausted).values(attempts=3))
    session.commit()
    request_cancel(session, job_id=cancelling)
    for job_id in (stale, exhausted, cancelling):
        _age_heartbeat(session, job_id, 600)

    ids = runs.requeue_stale(session, stale_after=timedelta(seconds=300), max_attempts=3)
    assert ids == [stale]
    assert _job(session, stale).status == "queued" and _job(session, stale).worker is None
    assert _job(session, fresh).status == "running"
    assert _job(session, cancelling).status == "cancelled"
    failed = _job(session, exhausted)
    assert failed.status == "failed" and "3 attempts" in (failed.error or "")
    # The old worker has lost the job; the next claim counts a second attempt.
    assert not runs.heartbeat(session, job_id=stale, worker="dead", outer_step=5)
    assert runs.claim_job(session, job_id=stale, worker="w2")
    assert _job(session, stale).attempts == 2


def test_requeue_stale_returns_queued_jobs_whose_message_may_be_lost(
    session: Session, new_job: NewJob
) -> None:
    lost, recent = new_job(), new_job()
    old = utcnow() - timedelta(hours=1)
    session.execute(update(Job).where(Job.id == lost).values(created_at=old, enqueued_at=old))
    session.commit()
    minute = timedelta(minutes=1)
    assert runs.requeue_stale(session, stale_after=minute, max_attempts=3) == [lost]
    # Once the caller has sent it and marked it, the next sweep does not send it again straight away.
    mark_enqueued(session, job_ids=[lost])
    assert runs.requeue_stale(session, stale_after=minute, max_attempts=3) == []
    assert _job(session, recent).status == "queued"


def test_a_job_whose_message_was_never_sent_is_sent_soon(session: Session, new_job: NewJob) -> None:
    unsent, sent = new_job(), new_job()
    soon = utcnow() - runs.UNSENT_AFTER - timedelta(seconds=1)
    session.execute(update(Job).where(Job.id == unsent).values(created_at=soon, enqueued_at=None))
    session.execute(update(Job).where(Job.id == sent).values(created_at=soon, enqueued_at=soon))
    session.commit()
    hour = timedelta(hours=1)
    assert runs.requeue_stale(session, stale_after=hour, max_attempts=3) == [unsent]
    # and a zero lost_after means every queued job, now
    assert set(runs.requeue_stale(session, stale_after=hour, max_attempts=3, lost_after=timedelta(0))) == {
        unsent,
        sent,
    }


def test_a_released_job_does_not_count_as_an_attempt(session: Session, new_job: NewJob) -> None:
    job_id = new_job()
    assert runs.claim_job(session, job_id=job_id, worker="w1")
    assert runs.release_job(session, job_id=job_id, worker="w1")
    job = _job(session, job_id)
    assert (job.status, job.worker, job.attempts) == ("queued", None, 0)
    assert not runs.release_job(session, job_id=job_id, worker="w1")  # only a running job


def test_ended_jobs_drop_their_checkpoint_and_a_cancel_beats_a_late_finish(
    session: Session, new_job: NewJob
) -> None:
    failed, cancelled = new_job(), new_job()
    for job_id in (failed, cancelled):
        assert runs.claim_job(session, job_id=job_id, worker="w1")
        assert runs.save_checkpoint(session, job_id=job_id, worker="w1", outer_step=10, data=b"state")
    assert runs.fail_job(session, job_id=failed, worker="w1", error="boom")
    request_cancel(session, job_id=cancelled)
    assert not runs.finish_job(session, job_id=cancelled, worker="w1", summary={})
    assert runs.mark_cancelled(session, job_id=cancelled, worker="w1")
    assert session.scalar(select(func.count()).select_from(Checkpoint)) == 0
    assert _job(session, cancelled).status == "cancelled"


def test_a_resumed_job_keeps_its_first_start_time(session: Session, new_job: NewJob) -> None:
    job_id = new_job()
    assert runs.claim_job(session, job_id=job_id, worker="w1")
    first = _job(session, job_id).started_at
    assert runs.release_job(session, job_id=job_id, worker="w1")
    assert runs.claim_job(session, job_id=job_id, worker="w2")
    assert _job(session, job_id).started_at == first
