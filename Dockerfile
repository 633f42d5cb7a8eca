# syntax=docker/dockerfile:1
# Two images from one file:
#
#   docker build --target api    -t optfb-api .      HTTP API and migrations; no torch
#   docker build --target worker -t optfb-worker .   Celery worker with CUDA torch
#
# The worker image is python:slim plus the CUDA build of torch from PyTorch's wheel index: the
# wheels carry the CUDA runtime libraries, so the host needs only the NVIDIA driver and the
# NVIDIA container toolkit (no nvidia/cuda base image). For a CPU-only worker, build with
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- shared base: a non-root user and a virtual environment on PATH ----------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 optfb \
    && useradd --system --uid 10001 --gid optfb --create-home --home-dir /home/optfb optfb \
    && python -m venv /opt/venv \
    && mkdir /data && chown optfb:optfb /data
WORKDIR /home/optfb

# --- the project as a wheel (no dependencies); each image installs it with its extras ---------
FROM base AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY optfb optfb
COPY store store
COPY api api
COPY worker worker
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- api: FastAPI + SQLAlchemy + the Celery producer, validating specs without torch ----------
FROM base AS api
COPY --from=wheel /wheels /wheels
# The wheel by path, not by name: an index must not offer another project called optfb.
RUN pip install "$(ls /wheels/optfb-*.whl)[service]" && rm -rf /wheels \
    && ! python -c "import torch" 2>/dev/null
USER optfb
ENV OPTFB_HOST=0.0.0.0 OPTFB_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('OPTFB_PORT', '8000'), timeout=4)"]
# Migrations run before the API serves: docker-compose.yml runs `python -m store.db` in a
# one-shot service first; elsewhere run it once per release.
CMD ["python", "-m", "api"]

# --- worker: the science library with CUDA torch, one process per GPU --------------------------
FROM base AS worker
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# torch first, in a layer of its own (gigabytes, rarely changed), with the exact pin; the science
# extra's range is then already satisfied, so no other build of torch is pulled in.
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
COPY --from=wheel /wheels /wheels
RUN pip install "$(ls /wheels/optfb-*.whl)[science,service]" "torch==${TORCH_VERSION}" \
    && rm -rf /wheels
USER optfb
# Data sets the specs name (e.g. MNIST's IDX files under /data/mnist) are read from here.
ENV OPTFB_DATA_DIR=/data \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
# The sweep thread touches a file at every pass; a solo-pool worker busy with a job cannot answer
# `celery inspect ping`, so that file is the liveness signal.
HEALTHCHECK --interval=60s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "worker.health"]
# The pool (solo), concurrency (1), acknowledgement and prefetch settings are in
# worker/celery_app.py. SIGTERM (docker stop) is a warm shutdown: the job runs on to its next
# checkpoint (at most about a minute) and goes back to the queue; give the container a
# stop_grace_period longer than that.
CMD ["python", "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", "optfb", \
     "-n", "optfb@%h", "--loglevel", "INFO"]
