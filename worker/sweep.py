"""Re-enqueues jobs that would otherwise never run: a dead worker's job, a lost run message.

Every worker runs `start_sweeper()` (on `worker_ready`): a daemon thread that, every
`sweep_interval()` seconds, asks the database for running jobs whose heartbeat is stale and for
queued jobs whose message is old, and sends their run messages again. The conditional updates in
`store.runs.requeue_stale` make it safe for many workers to sweep at once; a message sent twice is
refused by the task's claim. Each pass also touches ALIVE_FILE, which the worker image's health
check reads (a solo-pool worker cannot answer `celery inspect ping` while it runs a job).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

from celery import Celery

from store import runs
from store.config import Settings, get_settings
from store.db import session_scope
from store.jobs import mark_enqueued

log = logging.getLogger(__name__)

ALIVE_FILE = Path(tempfile.gettempdir()) / "optfb-worker.alive"

# A queued job can wait for hours behind long jobs, with its message still in the queue: resend
# only after this long (or stale_after, if longer), so the queue does not fill with duplicates.
LOST_MESSAGE_AFTER = timedelta(minutes=30)

_started = threading.Lock()
_thread: threading.Thread | None = None


def sweep_interval(settings: Settings) -> float:
    """Often enough to notice a stale job soon after it goes stale; between 5 s and a minute."""
    return min(60.0, max(5.0, settings.stale_after_seconds / 4))


def sweep_once(
    *,
    stale_after: timedelta | None = None,
    lost_after: timedelta | None = None,
    settings: Settings | None = None,
    via: Celery | None = None,
) -> list[uuid.UUID]:
    """One pass: re-queue stale jobs, then send a run message for each job that needs one.

    Defaults: the process's settings and app, stale after `stale_after_seconds`, a queued job's
    message presumed lost after LOST_MESSAGE_AFTER.
    """
    from worker.celery_app import enqueue

    settings = settings or get_settings()
    if stale_after is None:
        stale_after = timedelta(seconds=settings.stale_after_seconds)
    if lost_after is None:
        lost_after = max(LOST_MESSAGE_AFTER, stale_after)
    with session_scope(settings.resolved_database_url) as session:
        ids = runs.requeue_stale(
            session,
            stale_after=stale_after,
            max_attempts=settings.max_attempts,
            lost_after=lost_after,
        )
        # Marked one by one once sent: if the broker fails midway, the rest stay due and the
        # next pass sends them (a re-queued job counts as never sent).
        for job_id in ids:
            enqueue(str(job_id), via=via)
            mark_enqueued(session, job_ids=[job_id])
    if ids:
        log.info("sweep: re-enqueued %d job(s): %s", len(ids), ", ".join(map(str, ids)))
    return ids


def _loop(interval: float) -> None:
    while True:
        try:
            sweep_once()
            ALIVE_FILE.write_text(f"{os.getpid()}\n")
        except Exception:
            log.warning("sweep failed; trying again in %g s", interval, exc_info=True)
        time.sleep(interval)


def start_sweeper() -> None:
    """Start the sweep thread once per process."""
    global _thread
    with _started:
        if _thread is not None and _thread.is_alive():
            return
        interval = sweep_interval(get_settings())
        _thread = threading.Thread(target=_loop, args=(interval,), name="sweep", daemon=True)
        _thread.start()
        log.info("sweep: every %g s", interval)
