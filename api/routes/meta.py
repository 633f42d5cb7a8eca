"""The service itself: the spec's JSON Schema, ready-made presets, liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import inspect, text

from api.deps import QueueDep, SessionDep
from api.problems import PROBLEM, Problem
from api.schemas import Health, Ready
from optfb.spec import ExperimentSpec
from optfb.spec.presets import PRESETS

router = APIRouter(tags=["meta"])


@router.get("/v1/spec/schema", summary="JSON Schema of the experiment spec")
def spec_schema() -> dict[str, Any]:
    return ExperimentSpec.model_json_schema()


@router.get("/v1/presets", summary="Ready-made specs by name, to post as they are")
def presets() -> dict[str, dict[str, Any]]:
    return PRESETS


@router.get("/healthz", response_model=Health, summary="Liveness (no I/O)")
def healthz() -> Health:
    return Health()


def _check_database(session: SessionDep) -> str | None:
    try:
        session.execute(text("SELECT 1"))
        if not inspect(session.connection()).has_table("jobs"):
            return "not migrated (no jobs table); run `python -m store.db`"
    except Exception as exc:
        return f"unreachable ({_first_line(exc)})"
    return None


def _first_line(exc: Exception) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


@router.get("/readyz", response_model=Ready, responses={503: PROBLEM}, summary="Readiness: DB and broker")
def readyz(session: SessionDep, queue: QueueDep) -> Ready:
    failures: dict[str, str] = {}
    if (problem := _check_database(session)) is not None:
        failures["database"] = problem
    try:
        queue.check()
    except Exception as exc:
        failures["broker"] = f"unreachable at {queue.broker_url} ({_first_line(exc)})"
    if failures:
        raise Problem(
            503,
            "; ".join(f"{what}: {why}" for what, why in failures.items()),
            kind="not-ready",
            title="Not ready",
            checks={what: failures.get(what, "ok") for what in ("database", "broker")},
        )
    return Ready(checks={"database": "ok", "broker": "ok"})
