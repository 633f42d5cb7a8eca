"""The job task in a real Celery worker process, on SQLite + filesystem and PostgreSQL + Redis."""

from __future__ import annotations

import hashlib
import signal
from datetime import timedelta

import numpy as np
import pytest
from safetensors.numpy import load
from sqlalchemy import select

from store.db import session_scope
from store.jobs import request_cancel
from store.models import Artifact, Checkpoint, Metric
from tests.worker.helpers import Backend, long_spec, tiny, wait_for, wait_status

pytestmark = pytest.mark.slow


def metric_steps(backend: Backend, job_id: str) -> list[int]:
    with session_scope(backend.url) as session:
        rows = session.scalars(select(Metric.outer_step).where(Metric.job_id == backend.job(job_id).id))
        return sorted(rows)


def artifact(backend: Backend, job_id: str) -> Artifact | None:
    with session_scope(backend.url) as session:
        return session.get(Artifact, (backend.job(job_id).id, "feedback"))


def checkpoint_step(backend: Backend, job_id: str) -> int | None:
    with session_scope(backend.url) as session:
        found = session.get(Checkpoint, backend.job(job_id).id, populate_existing=True)
        return None if found is None else found.outer_step


def test_jobs_run_once_and_store_their_result_or_their_failure(backend: Backend) -> None:
    # The message is delivered twice, as a broker may: the second delivery must not run the job.
    job_id = backend.submit(tiny(), send=2)
    failing_id = backend.submit(tiny(inner={"lr": 1e6}, network={"activation": "linear"}))
    _, log = backend.start_worker()

    job = wait_status(backend, job_id, "succeeded", "failed")
    assert job.status == "succeeded", job.error
    assert job.attempts == 1
    assert job.outer_step == job.outer_steps == 3
    assert job.summary and "meta_loss" in job.summary
    assert metric_steps(backend, job_id) == [1, 2, 3]

    stored = artifact(backend, job_id)
    assert stored is not None and stored.format == "safetensors"
    assert stored.sha256 == hashlib.sha256(stored.data).hexdigest()
    assert stored.size == len(stored.data)
    assert stored.shapes == {"B2": [5, 3]}
    matrices = load(stored.data)
    assert matrices["B2"].shape == (5, 3) and np.isfinite(matrices["B2"]).all()
    assert checkpoint_step(backend, job_id) is None  # dropped once the job succeeded

    # A diverging spec: failed, with the exception's type and message on one line.
    failed = wait_status(backend, failing_id, "succeeded", "failed")
    assert failed.status == "failed"
    assert failed.error is not None and "\n" not in failed.error
    assert failed.error.startswith("NonFiniteError: outer step 1")
    assert artifact(backend, failing_id) is None
    assert "Traceback" in log.read_text()  # the traceback goes to the log, not to the user

    wait_for("the duplicate delivery to be dropped", lambda: "not claimed" in log.read_text())
    assert backend.job(job_id).attempts == 1


def test_cancel_stops_a_running_job(backend: Backend) -> None:
    job_id = backend.submit(long_spec(100_000))
    backend.start_worker()
    wait_for("progress", lambda: backend.job(job_id).outer_step > 5)

    with session_scope(backend.url) as session:
        request_cancel(session, job_id=job_id)
    job = wait_status(backend, job_id, "cancelled", "succeeded", "failed", timeout=20)
    assert job.status == "cancelled"
    assert job.finished_at is not None
    assert 5 < len(metric_steps(backend, job_id)) < 100_000
    assert artifact(backend, job_id) is None


def test_a_killed_job_resumes_from_its_checkpoint(backend: Backend) -> None:
    from worker.sweep import sweep_once

    steps = 60
    job_id = backend.submit(long_spec(steps))
    first, _ = backend.start_worker("first")
    wait_for("a checkpoint", lambda: checkpoint_step(backend, job_id), every=0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed = backend.job(job_id)
    assert killed.status == "running"  # as far as the database knows
    saved = checkpoint_step(backend, job_id)
    assert saved is not None and saved < steps

    # The sweep finds the job silent (any heartbeat is stale with stale_after=0) and re-sends it.
    sent = sweep_once(stale_after=timedelta(0), settings=backend.settings, via=backend.app)
    assert [str(i) for i in sent] == [job_id]
    assert backend.job(job_id).status == "queued"
    _, log = backend.start_worker("second")

    job = wait_status(backend, job_id, "succeeded", "failed")
    assert job.status == "succeeded", job.error
    assert job.attempts == 2
    assert metric_steps(backend, job_id) == list(range(1, steps + 1))
    assert artifact(backend, job_id) is not None
    # Resumed where the checkpoint left off, not started over from outer step 0.
    resumed = log.read_text()
    assert f"resuming from the checkpoint after outer step {saved}" in resumed, resumed[-3000:]


def test_a_worker_shutting_down_hands_its_job_back(backend: Backend) -> None:
    steps = 60
    job_id = backend.submit(long_spec(steps))
    first, first_log = backend.start_worker("first")
    wait_for("a checkpoint", lambda: checkpoint_step(backend, job_id), every=0.02)

    first.send_signal(signal.SIGTERM)  # warm shutdown, as `docker stop` sends
    assert first.wait(timeout=30) == 0
    job = backend.job(job_id)
    assert job.status == "queued", first_log.read_text()[-3000:]
    # It ran on to its next checkpoint and stopped right there: nothing to redo.
    saved = checkpoint_step(backend, job_id)
    assert saved is not None and 10 < saved < steps
    assert f"released at outer step {saved} " in first_log.read_text()
    assert metric_steps(backend, job_id) == list(range(1, saved + 1))

    # The job was re-enqueued on release: a new worker resumes it with no sweep.
    _, log = backend.start_worker("second")
    job = wait_status(backend, job_id, "succeeded", "failed")
    assert job.status == "succeeded", job.error
    assert job.attempts == 1  # a hand-back is not a failed attempt
    assert metric_steps(backend, job_id) == list(range(1, steps + 1))
    assert f"resuming from the checkpoint after outer step {saved}" in log.read_text()


def test_the_sweep_resends_a_queued_job_whose_message_was_lost(backend: Backend) -> None:
    from worker.sweep import sweep_once

    job_id = backend.submit(tiny(), send=0)  # committed, but its message never sent
    assert sweep_once(lost_after=timedelta(hours=1), settings=backend.settings, via=backend.app) == []
    sent = sweep_once(lost_after=timedelta(0), settings=backend.settings, via=backend.app)
    assert [str(i) for i in sent] == [job_id]
    assert backend.job(job_id).enqueued_at is not None

    backend.start_worker()
    job = wait_status(backend, job_id, "succeeded", "failed")
    assert job.status == "succeeded", job.error
