"""A real optfb server for end-to-end tests: `python -m worker.local` on a free port and a fresh
data folder (SQLite + the filesystem broker), stopped and cleaned up after the tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 60.0
JOB_SECONDS = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def child_pids(self) -> dict[str, list[int]]:
        """The launcher's children by name, in start order, from its log."""
        found: dict[str, list[int]] = {}
        for name, pid in re.findall(r"started (\w+) \(pid (\d+)\)", self.log.read_text()):
            found.setdefault(name, []).append(int(pid))
        return found

    def text(self) -> str:
        """Everything the launcher and its children wrote."""
        return self.log.read_text()

    def output(self) -> str:
        """The end of it, for failure messages."""
        return self.text()[-4000:]

    def wait_job(self, client: httpx.Client, job_id: str, *statuses: str) -> dict[str, Any]:
        deadline = time.monotonic() + JOB_SECONDS
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in (statuses or ("succeeded", "failed", "cancelled")):
                return job
            if time.monotonic() > deadline:
                pytest.fail(f"job {job_id} still {job['status']} after {JOB_SECONDS:g} s")
            time.sleep(0.2)


def server_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTFB_")}
    env.update(
        OPTFB_MODE="local",
        OPTFB_DATA_DIR=str(data_dir),
        OPTFB_HOST="127.0.0.1",
        OPTFB_PORT=str(port),
        OPTFB_HEARTBEAT_SECONDS="0.05",  # progress written every 50 ms,
        OPTFB_CHECKPOINT_EVERY="10",
        PYTHONUNBUFFERED="1",
    )
    return env


def start(data_dir: Path, log: Path, port: int | None = None) -> Server:
    port = port or free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.local"],
            cwd=ROOT,
            env=server_env(data_dir, port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", data_dir, log, process)
    deadline = time.monotonic() + START_SECONDS
    while True:
        if process.poll() is not None:
            pytest.fail(f"worker.local exited with {process.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop(server)
            pytest.fail(f"the server did not become ready in {START_SECONDS:g} s:\n{server.output()}")
        time.sleep(0.2)


def stop(server: Server) -> int | None:
    """SIGTERM the launcher (it stops its children); if it has not exited after 40 s, kill it and
    whichever of its children are still running."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
            for pids in server.child_pids().values():
                for pid in pids:
                    _kill_child(pid)
    return server.process.returncode


def _kill_child(pid: int) -> None:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return  # gone
    if b"worker.celery_app" in command or b"api.app:app" in command:  # not a reused pid
        os.kill(pid, signal.SIGKILL)


@contextmanager
def running(folder: Path) -> Iterator[Server]:
    """A server on the data folder in `folder`; each start writes a log of its own there."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"server-{len(list(folder.glob('server-*.log')))}.log"
    server = start(folder / "data", log)
    try:
        yield server
    finally:
        stop(server)


_shared: dict[str, Server] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    """One server for every module that asks for it (the HTTP and the client CLI tests), stopped
    when the test session ends."""
    if "server" not in _shared:
        folder = tmp_path_factory.mktemp("server")
        folder.mkdir(parents=True, exist_ok=True)
        started = _shared["server"] = start(folder / "data", folder / "server-0.log")
        request.config.add_cleanup(lambda: stop(started))
    return _shared["server"]
