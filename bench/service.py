"""Service figures against real Redis and Postgres: submit -> running latency, status-poll throughput.

A fresh Postgres database (unique name, migrated with store.db.migrate, dropped afterwards) and a
Redis database (flushed before and after) back one uvicorn server (api.app:app) and one Celery
worker (worker.celery_app, solo pool), both started here as child processes and stopped in
`finally`. One warm-up job runs first (the worker's first job imports torch); then tiny jobs are
submitted over HTTP one at a time, each after the previous finished, so that the latency is the
dispatch path (API -> broker -> worker claim), not queueing behind another job:

    latency = first GET /v1/jobs/{id} showing "running" (or later) - the moment POST was sent
              (polled every POLL_SECONDS; also the server's own started_at - created_at)
    polling = GET /v1/jobs/{id} requests per second for a fixed window, one keep-alive client,
              then 4 threads with a client each; no job runs meanwhile.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
# The admin connection used to create and drop the benchmark's database, and the Redis database.
POSTGRES_URL = os.environ.get("OPTFB_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("OPTFB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
POLL_SECONDS = 0.01
START_SECONDS = 60.0
JOB_SECONDS = 60.0
DONE = ("succeeded", "failed", "cancelled")


def _port_open(url: str, default: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default), 2):
            return True
    except OSError:
        return False


def unavailable() -> str | None:
    """Why the service figures cannot be taken here, or None."""
    for module in (
        "httpx",
        "psycopg",
        "redis",
        "fastapi",
        "uvicorn",
        "celery",
        "api.app",
        "worker.celery_app",
    ):
        try:
            __import__(module)
        except Exception as exc:  # an import error or a settings error at import
            return f"cannot import {module}: {exc}"
    if not _port_open(POSTGRES_URL, 5432):
        return f"PostgreSQL is not reachable at {POSTGRES_URL} (set OPTFB_BENCH_POSTGRES_URL)"
    if not _port_open(REDIS_URL, 6379):
        return f"Redis is not reachable at {REDIS_URL} (set OPTFB_BENCH_REDIS_URL)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _libpq(url: str) -> str:
    """psycopg wants postgresql://, not SQLAlchemy's postgresql+psycopg://."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty Postgres database; yields its SQLAlchemy URL and drops it afterwards."""
    import psycopg

    name = f"optfb_bench_{uuid.uuid4().hex[:12]}"
    admin = _libpq(POSTGRES_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin)
    url = urlunsplit(parts._replace(scheme="postgresql+psycopg", path=f"/{name}"))
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def flushed_redis() -> Iterator[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def servers(database_url: str, broker_url: str, folder: Path) -> Iterator[str]:
    """uvicorn + one Celery worker against the given database and broker; yields the base URL."""
    import httpx

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTFB_")}
    env.update(
        OPTFB_MODE="local",
        OPTFB_DATABASE_URL=database_url,
        OPTFB_BROKER_URL=broker_url,
        OPTFB_DATA_DIR=str(folder / "data"),
        OPTFB_HOST="127.0.0.1",
        OPTFB_PORT=str(port),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
    )
    api_cmd = [
        sys.executable, "-m", "uvicorn", "api.app:app", "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    worker_cmd = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--pool=solo",
        "-Q", "optfb", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h", "--loglevel=WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    processes: list[subprocess.Popen[bytes]] = []
    logs = {name: (folder / f"{name}.log").open("wb") for name in ("api", "worker")}
    try:
        for name, cmd in (("api", api_cmd), ("worker", worker_cmd)):
            processes.append(
                subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logs[name], stderr=subprocess.STDOUT)
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_SECONDS
        while True:
            for process, name in zip(processes, ("api", "worker"), strict=True):
                if process.poll() is not None:
                    raise RuntimeError(f"the {name} exited with {process.returncode}: {_tail(folder, name)}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API was not ready after {START_SECONDS:g} s: {_tail(folder, 'api')}")
            time.sleep(0.1)
        yield base
    finally:
        for process in processes:
            _stop(process)
        for log in logs.values():
            log.close()


def _tail(folder: Path, name: str) -> str:
    try:
        return " | ".join((folder / f"{name}.log").read_text().strip().splitlines()[-3:])
    except OSError:
        return ""


def _parse(stamp: str | None) -> datetime | None:
    return None if stamp is None else datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _submit_and_time(client: Any, spec: dict[str, Any], name: str) -> dict[str, Any]:
    """POST one job, poll until it is running, then until it is done."""
    sent = time.perf_counter()
    response = client.post("/v1/jobs", json={**spec, "name": name})
    if response.status_code != 202:
        raise RuntimeError(f"POST /v1/jobs answered {response.status_code}: {response.text[:300]}")
    job_id = response.json()["id"]
    running_after = None
    deadline = time.monotonic() + JOB_SECONDS
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if running_after is None and job["status"] != "queued":
            running_after = time.perf_counter() - sent
        if job["status"] in DONE:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {job['status']} after {JOB_SECONDS:g} s")
        time.sleep(POLL_SECONDS)
    created, started, finished = (_parse(job.get(k)) for k in ("created_at", "started_at", "finished_at"))
    return {
        "id": job_id,
        "status": job["status"],
        "submit_to_running_s": running_after,
        "server_created_to_started_s": None
        if not (created and started)
        else (started - created).total_seconds(),
        "run_s": None if not (started and finished) else (finished - started).total_seconds(),
    }


def _poll_rate(base: str, path: str, seconds: float, threads: int) -> dict[str, Any]:
    """GET `path` as fast as `threads` keep-alive clients can for `seconds`."""
    import httpx

    counts = [0] * threads
    errors = [0] * threads
    start = threading.Barrier(threads + 1)

    def loop(i: int) -> None:
        with httpx.Client(base_url=base, timeout=10) as client:
            client.get(path)  # open the connection before the clock starts
            start.wait()
            stop = time.perf_counter() + seconds
            while time.perf_counter() < stop:
                if client.get(path).status_code == 200:
                    counts[i] += 1
                else:
                    errors[i] += 1

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    began = time.perf_counter()
    for w in workers:
        w.join(timeout=seconds + 30)
    elapsed = time.perf_counter() - began
    return {
        "threads": threads,
        "requests": sum(counts),
        "errors": sum(errors),
        "seconds": elapsed,
        "requests_per_s": sum(counts) / elapsed,
    }


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(quick: bool) -> dict[str, Any]:
    import httpx

    from optfb.spec.presets import PRESETS
    from store.db import migrate

    jobs = 3 if quick else 10
    window = 1.0 if quick else 2.0
    spec = PRESETS["tiny"]
    with (
        tempfile.TemporaryDirectory(prefix="optfb-bench-") as tmp,
        fresh_database() as db,
        flushed_redis() as broker,
    ):
        migrate(db)
        with servers(db, broker, Path(tmp)) as base, httpx.Client(base_url=base, timeout=10) as client:
            warm = _submit_and_time(client, spec, "bench-warm-up")
            runs = [_submit_and_time(client, spec, f"bench-{i}") for i in range(jobs)]
            path = f"/v1/jobs/{runs[-1]['id']}"
            polling = {
                "1 client": _poll_rate(base, path, window, 1),
                "4 threads": _poll_rate(base, path, window, 4),
            }
    latencies = [r["submit_to_running_s"] for r in runs if r["submit_to_running_s"] is not None]
    server_side = [
        r["server_created_to_started_s"] for r in runs if r["server_created_to_started_s"] is not None
    ]
    return {
        "postgres": POSTGRES_URL.rsplit("@", 1)[-1],
        "redis": REDIS_URL.rsplit("@", 1)[-1],
        "preset": "tiny",
        "warm_up": warm,
        "jobs": runs,
        "latency": {
            "jobs": len(latencies),
            "median_s": statistics.median(latencies),
            "p90_s": _quantile(latencies, 0.9),
            "max_s": max(latencies),
            "server_median_s": statistics.median(server_side) if server_side else None,
            "poll_interval_s": POLL_SECONDS,
        },
        "polling": polling,
        "poll_window_s": window,
        "statuses": sorted({r["status"] for r in runs}),
    }


def run(quick: bool) -> dict[str, Any]:
    """The service section: figures, or {"skipped": reason} / {"error": reason}."""
    reason = unavailable()
    if reason is not None:
        print(f"[bench] service: skipped: {reason}", file=sys.stderr, flush=True)
        return {"skipped": reason}
    print(
        "[bench] service: starting uvicorn and a Celery worker on a fresh database",
        file=sys.stderr,
        flush=True,
    )
    try:
        return measure(quick)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
