"""The one Celery task, `optfb.run_job`: claim a job by id, run it, and record the outcome.

The message carries only the job id; the task re-reads the job from the database. It is
idempotent: the claim is a conditional update (queued -> running), so a message delivered twice,
or a job that was cancelled or finished meanwhile, runs nothing.
"""

from __future__ import annotations

import gc
import logging
import sys
import uuid

from store import runs
from store.config import get_settings
from store.db import session_scope
from worker.celery_app import TASK_NAME, app, enqueue
from worker.runner import SHUTTING_DOWN, run_claimed

log = logging.getLogger(__name__)


@app.task(name=TASK_NAME, ignore_result=True)
def run_job(job_id: str) -> str:
    try:
        uuid.UUID(str(job_id))
    except ValueError:
        log.error("run_job: %r is not a job id; message dropped", job_id)
        return "invalid"
    if SHUTTING_DOWN.is_set():
        # A message taken while stopping: do not start what would stop at once, send it again
        # for another worker (or this one, restarted).
        enqueue(job_id)
        log.info("job %s: worker is shutting down; message sent back to the queue", job_id)
        return "deferred"
    settings = get_settings()
    worker = settings.worker_name
    with session_scope() as session:
        claimed = runs.claim_job(session, job_id=job_id, worker=worker)
    if not claimed:
        log.info(
            "job %s: not claimed (running elsewhere, finished, cancelled or unknown); "
            "duplicate or stale message dropped",
            job_id,
        )
        return "skipped"
    log.info("job %s: claimed by %s", job_id, worker)
    try:
        return run_claimed(str(job_id), worker, settings)
    finally:
        free_device_memory()


def free_device_memory() -> None:
    """Hand the GPU memory cached by the last job back: the worker process lives on for many jobs,
    and the next one (of another size, or after an out-of-memory failure) starts from a clean GPU."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        gc.collect()
        torch.cuda.empty_cache()
