"""Helpers of the worker tests: a database + broker pair that real Celery worker processes are
started against, jobs submitted as the API does, and polling with timeouts."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from celery import Celery

from optfb.spec import ExperimentSpec
from optfb.spec.presets import PRESETS
from store.config import Settings
from store.db import session_scope
from store.jobs import create_job, get_job
from store.models import Job

ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 60.0


def tiny(**changes: Any) -> dict[str, Any]:
    """The tiny preset with sections updated, e.g. tiny(outer={"steps": 500})."""
    spec = copy.deepcopy(PRESETS["tiny"])
    for section, values in changes.items():
        if isinstance(values, dict):
            spec.setdefault(section, {}).update(values)
        else:
            spec[section] = values
    return spec


def long_spec(steps: int) -> dict[str, Any]:
    """The tiny preset with `steps` outer steps of a 20-step unroll each (milliseconds each), so a
    test polling fast can act between two checkpoints, and a cheap evaluation."""
    return tiny(
        inner={"steps": 20},
        outer={"steps": steps},
        eval={"horizons": [5], "seeds": 1, "analysis_points": 2},
    )


@dataclass
class Backend:
    """A database and a broker; `env` points a worker process at them."""

    name: str
    settings: Settings
    env: dict[str, str]
    logs: Path
    app: Celery = field(init=False)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from worker.celery_app import make_app

        self.app = make_app(self.settings)

    @property
    def url(self) -> str:
        return self.settings.resolved_database_url

    def submit(self, spec: dict[str, Any], *, send: int = 1) -> str:
        """Insert a queued job as the API does, then send its run message `send` times."""
        from worker.celery_app import enqueue

        with session_scope(self.url) as session:
            job, _ = create_job(session, owner="test", spec=ExperimentSpec.model_validate(spec))
            job_id = str(job.id)
        for _ in range(send):
            enqueue(job_id, via=self.app)
        return job_id

    def job(self, job_id: str) -> Job:
        with session_scope(self.url) as session:
            job = get_job(session, job_id=job_id)
            assert job is not None
            return job

    def start_worker(self, name: str = "w1") -> tuple[subprocess.Popen[bytes], Path]:
        log = self.logs / f"{name}.log"
        command = [
            sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
            "--pool=solo", "-Q", "optfb", "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h",
            "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        with log.open("wb") as out:
            process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.workers.append(process)
        return process, log

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_SECONDS, every: float = 0.1) -> Any:
    """Poll `check` every `every` seconds until it returns something truthy; fail with `what`
    after `timeout`. Tests that act between two checkpoints poll fast (every=0.02)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def wait_status(backend: Backend, job_id: str, *statuses: str, timeout: float = WAIT_SECONDS) -> Job:
    def check() -> Job | None:
        job = backend.job(job_id)
        return job if job.status in statuses else None

    return wait_for(f"job {job_id} to be {' or '.join(statuses)}", check, timeout)


def redis_db(url: str) -> str:
    """The test Redis on a database of its own, so that a concurrent test run (or another suite's
    producer) on the default database does not consume these tests' messages."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{1 + os.getpid() % 14}"))  # 1..14


def worker_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTFB_")}
    env.update(values)
    env["PYTHONUNBUFFERED"] = "1"
    return env
