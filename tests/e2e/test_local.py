"""The single-host launcher: it restarts a worker that dies, and jobs left queued or running when
it stopped run (resuming from their checkpoints) when it starts again."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from optfb.spec.presets import PRESETS
from tests.e2e.server import running
from tests.worker.helpers import long_spec, wait_for

pytestmark = pytest.mark.slow

LONG = long_spec(60)


def step(client: httpx.Client, job_id: str) -> int:
    return int(client.get(f"/v1/jobs/{job_id}").json()["progress"]["outer_step"])


def test_a_dead_worker_is_restarted_and_its_job_resumes(tmp_path: Path) -> None:
    with running(tmp_path) as server, server.client() as client:
        job_id = client.post("/v1/jobs", json=LONG).json()["id"]
        wait_for("a checkpoint", lambda: step(client, job_id) > 10, every=0.02)
        first = server.child_pids()["worker"][0]
        os.kill(first, signal.SIGKILL)  # as the OOM killer would

        wait_for("a new worker", lambda: len(server.child_pids()["worker"]) == 2)
        job = server.wait_job(client, job_id)
        assert job["status"] == "succeeded", (job["error"], server.output())
        assert "resuming from the checkpoint after outer step" in server.text()
        rows = client.get(f"/v1/jobs/{job_id}/metrics").json()["rows"]
        assert [row["outer_step"] for row in rows] == list(range(1, 61))


def test_jobs_left_when_it_stopped_run_when_it_starts_again(tmp_path: Path) -> None:
    with running(tmp_path) as server, server.client() as client:
        running_id = client.post("/v1/jobs", json=long_spec(120)).json()["id"]
        waiting_id = client.post("/v1/jobs", json=PRESETS["tiny"]).json()["id"]
        wait_for("progress", lambda: step(client, running_id) > 3, every=0.02)
    # SIGTERM stopped the launcher cleanly: the running job was handed back to the queue.
    assert server.process.returncode == 0, server.output()
    assert "released at outer step" in server.text()

    with running(tmp_path) as again, again.client() as client:
        for job_id in (running_id, waiting_id):
            job = again.wait_job(client, job_id)
            assert job["status"] == "succeeded", (job["error"], again.output())
        assert "resuming from the checkpoint after outer step" in again.text()


def test_it_gives_up_when_the_api_cannot_start(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from tests.e2e.server import ROOT, server_env

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "worker.local"],
            cwd=ROOT,
            env=server_env(tmp_path / "data", port),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "api exited with code" in result.stderr
