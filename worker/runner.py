"""Runs one claimed job: resume from its checkpoint, run optfb, report progress, store the result.

The database is the job's state. While the experiment runs, metric rows and the heartbeat are
written in batches (at most one round of writes a second while steps are fast, and one every
`heartbeat_seconds` from a background thread while a long step runs, so a slow step is never taken
for a dead worker). The experiment stops at its next outer step when the job is cancelled, when
the worker learns it no longer owns the job (it was re-queued as stale), or when the worker is
shutting down. On shutdown it runs on to its next checkpoint if the steps up to it fit in
SHUTDOWN_BUDGET_SECONDS (else it stops at once and loses the steps since the last one), then the
job goes back to the queue and another worker resumes it from that checkpoint.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from store import runs
from store.config import Settings
from store.db import session_scope
from store.jobs import get_job

log = logging.getLogger(__name__)

# Set by the worker's warm-shutdown handler (worker/celery_app.py).
SHUTTING_DOWN = threading.Event()

# While outer steps are fast, progress and metrics go to the database at most this often.
PROGRESS_SECONDS = 1.0
# On shutdown, keep going to the next checkpoint only while that ends within this many seconds
# after the shutdown began (docker-compose.yml gives the worker a longer stop_grace_period).
SHUTDOWN_BUDGET_SECONDS = 60.0


class Reporter:
    """Buffers metric rows and writes them with the heartbeat; tells the run when to stop."""

    def __init__(self, job_id: str, worker: str, *, start_step: int, beat: float) -> None:
        self.job_id, self.worker = job_id, worker
        self.step = start_step
        self.total: int | None = None  # known from the first report
        self.beat = beat
        self.step_seconds = 0.0  # duration of the last outer step
        self.checkpointed_at = float("-inf")  # monotonic time of the last saved checkpoint
        self._shutdown_seen: float | None = None
        self._last_step_at = time.monotonic()
        self.pending: list[dict[str, Any]] = []
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._buffer_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._last_write = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat_loop, name=f"heartbeat-{job_id}")

    def __enter__(self) -> Reporter:
        self._thread.daemon = True
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._done.set()
        self._thread.join()

    # Called by run_experiment on the main thread after every outer step.
    def on_progress(self, step: int, total: int, metrics: dict[str, Any]) -> None:
        now = time.monotonic()
        self.step_seconds, self._last_step_at = now - self._last_step_at, now
        with self._buffer_lock:
            self.pending.append({**metrics, "outer_step": step})
            self.step, self.total = step, total
        if time.monotonic() - self._last_write >= min(PROGRESS_SECONDS, self.beat):
            self.write(raise_errors=False)

    def should_stop(self) -> bool:
        if self.cancelled.is_set() or self.lost.is_set():
            return True
        if not SHUTTING_DOWN.is_set():
            return False
        now = time.monotonic()
        if self._shutdown_seen is None:
            self._shutdown_seen = now
        if self.checkpointed_at >= self._shutdown_seen:
            return True  # the checkpoint of this very step is saved: nothing is lost
        # Another step only if it (and so, with luck, the next checkpoint) ends within budget.
        return now + self.step_seconds - self._shutdown_seen > SHUTDOWN_BUDGET_SECONDS

    def write(self, *, raise_errors: bool) -> bool:
        """Store the buffered metrics, beat, and read the cancel flag, in one short session.

        A database error while running is logged and retried at the next write (the rows stay
        buffered) and False returned; at the end of the run the caller asks for it to be raised.
        """
        with self._write_lock:
            with self._buffer_lock:
                rows, step, total = list(self.pending), self.step, self.total
            try:
                with session_scope() as session:
                    if rows:
                        runs.add_metrics(session, job_id=self.job_id, rows=rows)
                    mine = runs.heartbeat(
                        session,
                        job_id=self.job_id,
                        worker=self.worker,
                        outer_step=step,
                        outer_steps=total,
                    )
                    cancel = mine and runs.is_cancel_requested(session, job_id=self.job_id)
            except SQLAlchemyError:
                if raise_errors:
                    raise
                log.warning("job %s: progress not written; retrying", self.job_id, exc_info=True)
                return False
            finally:
                self._last_write = time.monotonic()
            with self._buffer_lock:
                del self.pending[: len(rows)]
            if not mine:
                if not self.lost.is_set():
                    log.warning("job %s: no longer runs under %s; stopping", self.job_id, self.worker)
                self.lost.set()
            elif cancel:
                self.cancelled.set()
            return True

    def _beat_loop(self) -> None:
        tick = min(1.0, self.beat)
        while not self._done.wait(tick):
            if time.monotonic() - self._last_write >= self.beat:
                self.write(raise_errors=False)


def run_claimed(job_id: str, worker: str, settings: Settings) -> str:
    """Run a job this worker has claimed; returns the outcome (succeeded, failed, cancelled,
    released or lost). Never raises for a failure of the job itself: that is recorded."""
    try:
        with session_scope() as session:
            job = get_job(session, job_id=job_id)
            if job is None:
                return "lost"
            spec_data, checkpoint = job.spec, _checkpoint(session, job_id)
        import optfb  # torch: imported here so that the app and the sweep stay light

        spec = optfb.ExperimentSpec.model_validate(spec_data)
    except Exception as exc:
        log.exception("job %s: could not be loaded", job_id)
        return _fail(job_id, worker, exc)

    start = checkpoint[0] if checkpoint else 0
    if checkpoint:
        log.info("job %s: resuming from the checkpoint after outer step %d", job_id, start)
    reporter = Reporter(job_id, worker, start_step=start, beat=settings.heartbeat_seconds)

    def on_checkpoint(data: bytes, outer_step: int) -> None:
        # Metrics up to this step first: a run resumed from here does not report them again.
        # If they cannot be written, keep the older checkpoint (a resume then redoes more steps).
        if not reporter.write(raise_errors=False) or reporter.lost.is_set():
            return
        try:
            with session_scope() as session:
                saved = runs.save_checkpoint(
                    session, job_id=job_id, worker=worker, outer_step=outer_step, data=data
                )
            if saved:
                reporter.checkpointed_at = time.monotonic()
            else:  # the job was re-queued under us: its checkpoint is the new owner's now
                reporter.lost.set()
        except SQLAlchemyError:
            log.warning("job %s: checkpoint at %d not saved", job_id, outer_step, exc_info=True)

    def run(resume: bytes | None) -> Any:
        return optfb.run_experiment(
            spec,
            on_progress=reporter.on_progress,
            should_stop=reporter.should_stop,
            resume=resume,
            on_checkpoint=on_checkpoint,
            checkpoint_every=settings.checkpoint_every,
        )

    with reporter:
        try:
            try:
                result = run(checkpoint[1] if checkpoint else None)
            except optfb.CheckpointMismatch as exc:  # e.g. made by an older release: start over
                log.warning("job %s: %s; starting from outer step 0", job_id, exc)
                reporter.step = 0
                result = run(None)
        except optfb.Stopped:
            return _stopped(job_id, worker, reporter)
        except Exception as exc:
            log.exception("job %s: failed", job_id)
            reporter.write(raise_errors=False)  # the metrics up to the failure help diagnose it
            return _fail(job_id, worker, exc)
    try:
        return _succeed(job_id, worker, reporter, result)
    except Exception as exc:  # e.g. the artifact could not be serialised or stored
        log.exception("job %s: result not stored", job_id)
        return _fail(job_id, worker, exc)


def _checkpoint(session: Any, job_id: str) -> tuple[int, bytes] | None:
    """The job's checkpoint; a corrupted one is dropped (the run starts over) rather than failing."""
    try:
        return runs.load_checkpoint(session, job_id=job_id)
    except ValueError:
        log.warning("job %s: its checkpoint is corrupted; starting from outer step 0", job_id, exc_info=True)
        return None


def _succeed(job_id: str, worker: str, reporter: Reporter, result: Any) -> str:
    from optfb.io import safetensors_bytes

    data = safetensors_bytes(result.feedback)
    shapes = {name: list(tensor.shape) for name, tensor in result.feedback.items()}
    reporter.write(raise_errors=True)
    if reporter.lost.is_set():
        return "lost"
    digest = "none: no feedback matrices (backprop)"
    with session_scope() as session:
        if result.feedback:  # backprop mode has no B to store
            digest = runs.save_artifact(
                session,
                job_id=job_id,
                name="feedback",
                format="safetensors",
                data=data,
                shapes=shapes,
            )
        if not runs.finish_job(session, job_id=job_id, worker=worker, summary=result.summary):
            if runs.is_cancel_requested(session, job_id=job_id):  # asked for after the last poll
                runs.mark_cancelled(session, job_id=job_id, worker=worker)
                log.info("job %s: cancelled as it finished; its result is discarded", job_id)
                return "cancelled"
            log.warning("job %s: finished, but it is no longer %s's; result kept", job_id, worker)
            return "lost"
    log.info("job %s: succeeded (feedback sha256 %s)", job_id, digest)
    return "succeeded"


def _stopped(job_id: str, worker: str, reporter: Reporter) -> str:
    if reporter.lost.is_set():
        log.info("job %s: stopped, another worker owns it now", job_id)
        return "lost"
    reporter.write(raise_errors=False)
    with session_scope() as session:
        if reporter.cancelled.is_set() or runs.is_cancel_requested(session, job_id=job_id):
            runs.mark_cancelled(session, job_id=job_id, worker=worker)
            log.info("job %s: cancelled at outer step %d", job_id, reporter.step)
            return "cancelled"
        # Shutting down: hand the job back; it resumes from its last checkpoint.
        released = runs.release_job(session, job_id=job_id, worker=worker)
    if released:
        from worker.celery_app import enqueue

        try:
            enqueue(job_id)
        except Exception:  # the sweep sends it later (its message counts as lost)
            log.warning("job %s: released but not re-enqueued", job_id, exc_info=True)
        log.info("job %s: released at outer step %d for another worker", job_id, reporter.step)
        return "released"
    return "lost"


def _fail(job_id: str, worker: str, exc: BaseException) -> str:
    error = f"{type(exc).__name__}: {exc}"
    with session_scope() as session:
        runs.fail_job(session, job_id=job_id, worker=worker, error=error)
    return "failed"
