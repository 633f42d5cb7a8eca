"""A job's results: metric history, learned feedback downloads, the report and its plots."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api import downloads, plots
from api.deps import SessionDep
from api.problems import PROBLEM, Problem
from api.routes.jobs import JobDep
from api.schemas import MetricsOut, ReportOut
from store import jobs
from store.models import Job

router = APIRouter(prefix="/v1/jobs/{job_id}", tags=["results"])

FEEDBACK_ARTIFACT = "feedback"
# Enough for any plot: more outer steps than this are unusual, and a figure cannot show them.
PLOT_ROWS = 200_000


def _rows(session: SessionDep, job: Job) -> list[dict[str, object]]:
    metrics = jobs.metrics_since(session, job_id=job.id, limit=PLOT_ROWS)
    return [{"outer_step": m.outer_step, **m.values} for m in metrics]


@router.get("/metrics", response_model=MetricsOut, responses={404: PROBLEM})
def get_metrics(
    job: JobDep,
    session: SessionDep,
    since: Annotated[int | None, Query(ge=-1, description="Only rows with outer_step > since")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> MetricsOut:
    rows = jobs.metrics_since(session, job_id=job.id, since=since, limit=limit)
    return MetricsOut.of(rows, since)


@router.get(
    "/feedback",
    response_class=Response,
    responses={
        200: {
            "description": "The learned B2..BL: npz, safetensors or JSON "
            '({"B2": {"shape", "dtype", "data"}, ...}).',
            "content": {"application/octet-stream": {}, "application/json": {}},
        },
        404: PROBLEM,
        409: PROBLEM,
    },
)
def get_feedback(job: JobDep, session: SessionDep, format: downloads.Format = "npz") -> Response:
    if job.status != "succeeded":
        raise Problem(
            409,
            f"job {job.id} is {job.status}; the learned feedback can be downloaded once it has succeeded",
            kind="job-not-finished",
            job_status=job.status,
        )
    artifact = jobs.get_artifact(session, job_id=job.id, name=FEEDBACK_ARTIFACT)
    if artifact is None:
        raise Problem(
            404,
            f"job {job.id} stored no feedback matrices (feedback mode "
            f"{job.spec.get('feedback', {}).get('mode', '?')})",
            kind="no-feedback",
        )
    if artifact.format != "safetensors":
        raise Problem(500, f"the stored feedback has format {artifact.format!r}, not safetensors")
    name = downloads.filename(job.name, job.id, format)
    return Response(
        content=downloads.convert(artifact.data, format),
        media_type=downloads.MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-SHA256-Safetensors": artifact.sha256,
        },
    )


@router.get("/report", response_model=ReportOut, responses={404: PROBLEM})
def get_report(job: JobDep, session: SessionDep) -> ReportOut:
    count, last = jobs.metrics_summary(session, job_id=job.id)
    last_row = None if last is None else {"outer_step": last.outer_step, **last.values}
    return ReportOut(
        id=job.id,
        name=job.name,
        status=job.status,  # type: ignore[arg-type]
        summary=job.summary,
        metrics=count,
        last_metrics=last_row,
        # Which metric plots exist depends only on the series' names, which the last row has.
        plots=plots.available([last_row] if last_row else [], job.summary),
    )


@router.get(
    "/plots/{name}.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: PROBLEM},
)
def get_plot(job: JobDep, name: str, session: SessionDep) -> Response:
    rows = _rows(session, job)
    try:
        png = plots.render(name, rows, job.summary, title=f"{job.name} ({job.status})")
    except KeyError:
        offered = ", ".join(plots.available(rows, job.summary)) or "none yet"
        raise Problem(
            404,
            f"job {job.id} has no plot {name!r}; available: {offered}",
            kind="plot-not-found",
        ) from None
    return Response(content=png, media_type="image/png")
