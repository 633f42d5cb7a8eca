"""Single-host launcher (`python -m worker.local`, what `make run` runs): API and one worker.

It migrates the database, sends a run message for every job left queued or running by the last
session (so they run now), then starts uvicorn (`api.app:app` on OPTFB_HOST:OPTFB_PORT) and one
Celery worker as child processes, everything under OPTFB_DATA_DIR (default ./data). A child that
dies is restarted with exponential backoff; the jobs of a dead worker are re-queued first (they
resume from their checkpoints). SIGINT / SIGTERM stop both children cleanly (the worker hands its
job back at the next outer step); a second signal kills them at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from store.config import Settings, get_settings, reset_settings

log = logging.getLogger("optfb.local")

# A child that ran this long before exiting is restarted at once; quicker exits back off.
STABLE_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 60.0
# How long a clean stop may take before the children are killed: the worker's job runs on to its
# next checkpoint for up to a minute (worker/runner.py, SHUTDOWN_BUDGET_SECONDS) first.
STOP_GRACE_SECONDS = 90.0
POLL_SECONDS = 0.1


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    up: bool = False  # has served once (the API answered /healthz)
    # Give up if it exits before it ever served: an API that cannot bind its port (or import)
    # will not do better on the next try. A worker is always restarted.
    fatal_before_up: bool = False
    quick_exits: int = 0
    next_start: float = 0.0
    restarts: int = 0
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        # A session of its own: a Ctrl-C in the terminal reaches only the launcher, which then
        # stops each child exactly once.
        self.proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True)
        self.started = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.proc.pid)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass


def child_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["OPTFB_DATA_DIR"] = str(settings.data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def api_argv(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "api.app:app",
        "--host", settings.host, "--port", str(settings.port),
        "--timeout-graceful-shutdown", "10",
    ]  # fmt: skip


def worker_argv() -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "-Q", "optfb", "-n", "local@%h", "--pool", "solo", "--concurrency", "1",
        "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip


def recover(settings: Settings) -> list[Any]:
    """Send run messages for every queued job and re-queue running ones whose worker is gone.

    With the filesystem broker this launcher's worker is the only one (the data-folder lock
    guarantees it), so a job marked running when no worker runs is dead whatever its heartbeat
    says; with a shared broker, other hosts' workers may be alive, so only stale jobs are taken.
    """
    from worker.sweep import sweep_once

    single_host = settings.uses_filesystem_broker
    stale_after = timedelta(0) if single_host else timedelta(seconds=settings.stale_after_seconds)
    return sweep_once(stale_after=stale_after, lost_after=timedelta(0), settings=settings)


class Launcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        env = child_env(settings)
        self.api = Child("api", api_argv(settings), env=env, fatal_before_up=True)
        self.worker = Child("worker", worker_argv(), env=env)
        self.children = [self.api, self.worker]
        self.stopping = False
        self.force = False

    def handle_signal(self, signum: int, _frame: Any) -> None:
        if self.stopping:
            self.force = True
        self.stopping = True

    def run(self) -> int:
        code = 0
        try:
            while not self.stopping:
                now = time.monotonic()
                for child in self.children:
                    if not self._tend(child, now):
                        code = 1
                        self.stopping = True
                        break
                self._announce()
                time.sleep(POLL_SECONDS)
        finally:
            self.stop()
        return code

    def _tend(self, child: Child, now: float) -> bool:
        """Start, watch or restart one child; False if it cannot be run at all."""
        if child.proc is None:
            if now >= child.next_start:
                child.start()
            return True
        returncode = child.proc.poll()
        if returncode is None:
            return True
        ran = now - child.started
        child.proc = None
        if child.fatal_before_up and not child.up:
            log.error(
                "%s exited with code %s %.1f s after it started; see its output above",
                child.name, returncode, ran,
            )  # fmt: skip
            return False
        child.quick_exits = 0 if ran >= STABLE_SECONDS else child.quick_exits + 1
        # 0 s after a long run, then 1, 2, 4, ... s for exits in quick succession.
        delay = 0.0 if child.quick_exits == 0 else min(MAX_BACKOFF_SECONDS, 2.0 ** (child.quick_exits - 1))
        child.next_start = now + delay
        child.restarts += 1
        log.warning("%s exited with code %s; restarting in %g s", child.name, returncode, delay)
        if child is self.worker:
            try:
                ids = recover(self.settings)
                log.info("re-queued %d job(s) of the dead worker", len(ids))
            except Exception:
                log.warning("could not re-queue the dead worker's jobs", exc_info=True)
        return True

    def _announce(self) -> None:
        if self.api.up or self.api.proc is None:
            return
        url = f"http://{self.settings.host}:{self.settings.port}"
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                ready = response.status == 200
        except OSError:
            return
        if ready:
            self.api.up = True
            log.info("optfb is serving on %s (data in %s); Ctrl-C stops", url, self.settings.data_dir)

    def stop(self) -> None:
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        if not running:
            return
        log.info("stopping (Ctrl-C again to kill at once)")
        for child in running:
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while running:
            for child in list(running):
                assert child.proc is not None
                if self.force or time.monotonic() >= deadline:
                    log.warning("killing %s", child.name)
                    child.signal(signal.SIGKILL)
                    child.proc.wait()
                if child.proc.poll() is not None:
                    log.info("%s stopped (exit code %s)", child.name, child.proc.returncode)
                    running.remove(child)
            time.sleep(POLL_SECONDS if running else 0)
        log.info("stopped")


def _lock(path: Path) -> IO[str]:
    handle = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.stderr.write(f"optfb: another `python -m worker.local` is using {path.parent}\n")
        raise SystemExit(1) from None
    return handle


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    data_dir = get_settings().data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # Absolute, so that every child (and a relative SQLite path) sees the same folder.
    os.environ["OPTFB_DATA_DIR"] = str(data_dir)
    reset_settings()
    settings = get_settings()
    lock = _lock(data_dir / "local.lock")

    from store.db import migrate

    migrate(settings.resolved_database_url)
    ids = recover(settings)
    if ids:
        log.info("re-enqueued %d job(s) left from the last run", len(ids))

    launcher = Launcher(settings)
    signal.signal(signal.SIGINT, launcher.handle_signal)
    signal.signal(signal.SIGTERM, launcher.handle_signal)
    try:
        return launcher.run()
    finally:
        lock.close()


if __name__ == "__main__":
    sys.exit(main())
