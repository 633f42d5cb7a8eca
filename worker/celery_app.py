"""The Celery app: broker from the settings, configured for hours-long jobs on one GPU per worker.

Start a worker with

    CUDA_VISIBLE_DEVICES=0 celery -A worker.celery_app worker -Q optfb -n gpu0@%h

One worker process per GPU: CUDA_VISIBLE_DEVICES pins it to its GPU (the job's device "auto"
then means that GPU), the pool is `solo` (set below, no flag needed) and it runs one job at a time.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_ready, worker_shutting_down

from store.config import Settings, get_settings

QUEUE = "optfb"
TASK_NAME = "optfb.run_job"

# A visibility timeout longer than any job. Redis redelivers a message that was fetched but not
# acknowledged once this has passed; with late acknowledgement a job still running after that
# would be delivered to a second worker (whose claim then refuses it, but it would hold a GPU
# slot doing nothing). A worker that dies is not left waiting for this: the sweep re-enqueues
# its job as soon as the heartbeat is stale (worker/sweep.py).
VISIBILITY_TIMEOUT_SECONDS = 7 * 24 * 3600

FILESYSTEM_POLL_SECONDS = 0.2

log = logging.getLogger(__name__)


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for these settings."""
    transport_options: dict[str, Any] = dict(settings.broker_transport_options())
    if settings.uses_filesystem_broker:
        # The queue is a folder that the worker lists: 5 times a second (not the default once),
        # so that a job submitted on this host starts at once.
        transport_options["polling_interval"] = FILESYSTEM_POLL_SECONDS
    else:
        transport_options["visibility_timeout"] = VISIBILITY_TIMEOUT_SECONDS
    return {
        "broker_url": settings.resolved_broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        # The database is the state of a job; nothing ever reads an AsyncResult. No backend, and
        # no result stored.
        "result_backend": None,
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": False,
        # Acknowledge after the task returns, not when it starts: a worker that dies mid-job
        # leaves the message to be delivered again. Safe because the task is idempotent: it
        # claims the job with a conditional update, so a second delivery does nothing.
        "task_acks_late": True,
        # With a process pool, a child killed by the OOM killer or a signal puts its message back
        # instead of acknowledging it. (The solo pool has no children; this keeps the guarantee
        # if the pool is ever changed.)
        "task_reject_on_worker_lost": True,
        # Reserve one message at a time: a worker busy for hours must not sit on jobs that an
        # idle worker on another GPU could run.
        "worker_prefetch_multiplier": 1,
        # CUDA cannot be re-initialised in a forked child, so no prefork: the solo pool runs the
        # job in the worker's own process, one job at a time; concurrency comes from running one
        # worker process per GPU. Task time limits are not used (solo cannot enforce them, and
        # the spec's bounds limit the work).
        "worker_pool": "solo",
        "worker_concurrency": 1,
        # A broker connection blip must not abort hours of GPU work: the job keeps running, and
        # its redelivered message (if any) is refused by the claim.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_default_queue": QUEUE,
        "task_routes": {TASK_NAME: {"queue": QUEUE}},
        "task_serializer": "json",
        "accept_content": ["json"],
        # No task events: the progress a user sees is written to the database by the task.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        # Remote control (celery inspect / control) over Redis; the single-host filesystem
        # transport has one worker and would only collect broadcast files.
        "worker_enable_remote_control": not settings.uses_filesystem_broker,
    }


def make_app(settings: Settings) -> Celery:
    """An app for explicit settings (a producer for another database and broker, in tests)."""
    app = Celery("optfb", include=["worker.tasks"], set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


# The process's app, configured from the environment on first use (so importing this module
# creates no folders and opens no connections).
app = Celery("optfb", include=["worker.tasks"])
app.add_defaults(lambda: celery_config(get_settings()))


def enqueue(job_id: str, *, via: Celery | None = None) -> None:
    """Send the run message for a job: what the API sends, from the worker's own producer."""
    (via or app).send_task(TASK_NAME, args=[str(job_id)], queue=QUEUE)


@worker_init.connect
def limit_torch_threads(**_: Any) -> None:
    """Apply OPTFB_TORCH_THREADS before the first job runs."""
    threads = get_settings().torch_threads
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
        log.info("torch uses %d CPU thread(s)", threads)


@worker_ready.connect
def _start_sweeper(sender: Any = None, **_: Any) -> None:
    from worker.sweep import start_sweeper

    start_sweeper()


@worker_shutting_down.connect
def _stop_running_job(sig: str = "", how: str = "", **_: Any) -> None:
    # Warm shutdown (SIGTERM, as `docker stop` sends): the running job stops at its next outer
    # step, saves a checkpoint and is handed back to the queue, so another worker resumes it.
    from worker.runner import SHUTTING_DOWN

    SHUTTING_DOWN.set()
