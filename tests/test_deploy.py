"""The deployment files keep their promises: compose services, health, GPU reservation, images."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_services_wait_for_healthy_dependencies(compose):
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "api", "worker", "worker-cpu"} <= set(services)
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("api", "worker", "worker-cpu"):
        needs = services[name]["depends_on"]
        assert needs["postgres"]["condition"] == "service_healthy"
        assert needs["redis"]["condition"] == "service_healthy"
        assert needs["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["python", "-m", "store.db"]


def test_compose_redis_keeps_queued_messages(compose):
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command


def test_compose_gpu_worker_and_cpu_profile(compose):
    services = compose["services"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    assert "deploy" not in services["worker-cpu"]
    grace = services["worker"]["stop_grace_period"]
    assert re.fullmatch(r"\d+m", grace) and int(grace[:-1]) >= 2  # longer than a checkpoint's run-on


def test_compose_has_no_default_secrets(compose):
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text and "${OPTFB_API_TOKENS:?" in text
    assert compose["services"]["api"]["environment"]["OPTFB_MODE"] == "production"


def test_dockerfile_targets_user_and_exec_form():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM .* AS api$", text, re.M) and re.search(r"^FROM .* AS worker$", text, re.M)
    assert re.search(r"^USER optfb$", text, re.M)
    assert all(line.startswith("CMD [") for line in re.findall(r"^CMD .*", text, re.M))
    assert text.count("HEALTHCHECK") >= 2
    api_stage = text.split(" AS api")[1].split("FROM ")[0]
    api_stage = "\n".join(line for line in api_stage.splitlines() if not line.startswith("#"))
    assert "[service]" in api_stage and "science" not in api_stage and "torch==" not in api_stage


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_docker_compose_config_validates():
    env = {**os.environ, "POSTGRES_PASSWORD": "placeholder", "OPTFB_API_TOKENS": "placeholder:ci"}
    subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        check=True,
        env=env,
        cwd=ROOT,
    )
