"""The Celery configuration the worker relies on for long jobs, and the worker health check."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store.config import Settings
from worker.celery_app import QUEUE, TASK_NAME, VISIBILITY_TIMEOUT_SECONDS, make_app

ROOT = Path(__file__).resolve().parents[2]


def test_the_task_is_registered_under_the_name_the_api_sends(tmp_path: Path) -> None:
    # In a process of its own, as `celery -A worker.celery_app worker` loads the app.
    code = (
        "from worker.celery_app import app, TASK_NAME; app.loader.import_default_modules(); "
        "print(TASK_NAME in app.tasks, app.amqp.router.route({}, TASK_NAME)['queue'].name)"
    )
    env = {**os.environ, "OPTFB_DATA_DIR": str(tmp_path)}
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert TASK_NAME == "optfb.run_job" and QUEUE == "optfb"
    assert found.stdout.split() == ["True", "optfb"]


def test_settings_for_long_jobs(tmp_path: Path) -> None:
    conf = make_app(Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/0")).conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_pool == "solo" and conf.worker_concurrency == 1
    assert conf.task_ignore_result is True and conf.result_backend is None
    # Longer than a day, so Redis never redelivers a job that is still running.
    visibility = conf.broker_transport_options["visibility_timeout"]
    assert visibility == VISIBILITY_TIMEOUT_SECONDS > 24 * 3600


def test_local_mode_uses_the_filesystem_transport_in_the_data_folder(tmp_path: Path) -> None:
    conf = make_app(Settings(data_dir=tmp_path)).conf
    assert conf.broker_url == "filesystem://"
    options = conf.broker_transport_options
    assert options["data_folder_in"] == options["data_folder_out"] == str(tmp_path / "broker/queue")
    assert Path(options["data_folder_in"]).is_dir()
    assert options["polling_interval"] < 1  # a job submitted on this host starts at once


@pytest.mark.parametrize(("age", "healthy"), [(0, True), (3600, False), (None, False)])
def test_health_check_reads_the_sweep_alive_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, age: float | None, healthy: bool
) -> None:
    from worker import health

    alive = tmp_path / "alive"
    if age is not None:
        alive.write_text("1\n")
        os.utime(alive, (time.time() - age, time.time() - age))
    monkeypatch.setattr(health, "ALIVE_FILE", alive)
    assert (health.main() == 0) is healthy


def test_torch_threads_setting_is_applied_when_the_worker_starts(tmp_path: Path) -> None:
    # In a process of its own: the thread count is process-wide.
    code = (
        "import torch; from worker.celery_app import limit_torch_threads; "
        "limit_torch_threads(); print(torch.get_num_threads())"
    )
    env = {**os.environ, "OPTFB_DATA_DIR": str(tmp_path), "OPTFB_TORCH_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1"
