"""Results: metrics since a step, feedback in three formats, the report and its PNG plots."""

from __future__ import annotations

import io
import math
import uuid
from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient
from safetensors.numpy import save
from sqlalchemy.orm import Session

from store import runs
from tests.api.helpers import problem

Submit = Callable[..., uuid.UUID]
PNG = b"\x89PNG\r\n\x1a\n"

MATRICES = {
    "B2": np.arange(15, dtype=np.float32).reshape(5, 3) / 7,
    "B3": -np.arange(6, dtype=np.float32).reshape(3, 2),
}
# The shape of the library's summary: per horizon and kind of feedback, stats and a thinned curve.
SUMMARY = {
    "feedback_mode": "learned",
    "horizons": {
        str(m): {
            kind: {
                "mean_loss": 1.0 / (i + 1),
                "loss_curve": {"step": [1, m // 2, m], "value": [1.0, 0.5 / (i + 1), 0.1]},
            }
            for i, kind in enumerate(("learned", "random", "backprop"))
        }
        for m in (5, 20)
    },
    "analysis": {
        "angles": {
            "learned": {"step": [1, 5], "bw_angle": [[80.0], [40.0]], "update_angle": [[60.0], [30.0]]},
            "random": {"step": [1, 5], "bw_angle": [[89.0], [85.0]], "update_angle": [[70.0], [66.0]]},
        },
        "spectra": [
            {"layer": "B2", "feedback": [2.0, 1.0, 0.5], "forward_transpose": [0.1, 0.05, 0.01],
             "norm_ratio": 3.0},
        ],
    },
}  # fmt: skip


def _succeeded(db: Session, job_id: uuid.UUID, **artifact: object) -> None:
    assert runs.claim_job(db, job_id=job_id, worker="w")
    runs.add_metrics(
        db,
        job_id=job_id,
        rows=[{"outer_step": s, "meta_loss": 2.0 - s / 2, "grad_norm": 0.1 * s} for s in range(3)],
    )
    runs.save_artifact(
        db,
        job_id=job_id,
        name="feedback",
        format="safetensors",
        data=save(MATRICES),
        shapes={k: list(v.shape) for k, v in MATRICES.items()},
    )
    assert runs.finish_job(db, job_id=job_id, worker="w", summary=SUMMARY)


def test_metrics_since_returns_only_newer_rows(client: TestClient, submit: Submit, db: Session) -> None:
    job_id = submit()
    assert client.get(f"/v1/jobs/{job_id}/metrics").json() == {"rows": [], "next_since": None}
    rows = [{"outer_step": s, "meta_loss": 1.0 / (s + 1), "seconds": 0.01} for s in range(4)]
    runs.add_metrics(db, job_id=job_id, rows=rows)
    everything = client.get(f"/v1/jobs/{job_id}/metrics").json()
    assert everything["rows"] == rows and everything["next_since"] == 3
    newer = client.get(f"/v1/jobs/{job_id}/metrics", params={"since": 1}).json()
    assert [r["outer_step"] for r in newer["rows"]] == [2, 3] and newer["next_since"] == 3
    assert client.get(f"/v1/jobs/{job_id}/metrics?since=3").json() == {"rows": [], "next_since": 3}
    problem(client.get(f"/v1/jobs/{job_id}/metrics?since=soon"), 422)


def test_feedback_downloads_in_three_formats(client: TestClient, submit: Submit, db: Session) -> None:
    job_id = submit(name="my run/1")
    _succeeded(db, job_id)
    url = f"/v1/jobs/{job_id}/feedback"

    npz = client.get(url)  # npz is the default
    assert npz.status_code == 200
    assert npz.headers["content-type"] == "application/octet-stream"
    assert npz.headers["content-disposition"] == f'attachment; filename="my_run_1-{job_id}.npz"'
    with np.load(io.BytesIO(npz.content)) as loaded:
        assert sorted(loaded.files) == ["B2", "B3"]
        for name, matrix in MATRICES.items():
            np.testing.assert_array_equal(loaded[name], matrix)

    raw = client.get(url, params={"format": "safetensors"})
    assert raw.content == save(MATRICES)
    assert raw.headers["content-disposition"].endswith(f'-{job_id}.safetensors"')

    document = client.get(url, params={"format": "json"})
    assert document.headers["content-type"] == "application/json"
    body = document.json()
    assert list(body) == ["B2", "B3"]
    for name, matrix in MATRICES.items():
        assert body[name]["shape"] == list(matrix.shape)
        np.testing.assert_allclose(np.array(body[name]["data"], dtype=np.float32), matrix)

    problem(client.get(url, params={"format": "pickle"}), 422)


@pytest.mark.parametrize("state", ["queued", "running", "failed"])
def test_feedback_before_success_is_a_409_naming_the_status(
    client: TestClient, submit: Submit, db: Session, state: str
) -> None:
    job_id = submit()
    if state != "queued":
        runs.claim_job(db, job_id=job_id, worker="w")
    if state == "failed":
        runs.fail_job(db, job_id=job_id, worker="w", error="boom")
    body = problem(client.get(f"/v1/jobs/{job_id}/feedback"), 409)
    assert f"is {state}" in body["detail"]


def test_report_lists_plots_and_each_is_a_png(client: TestClient, submit: Submit, db: Session) -> None:
    job_id = submit()
    _succeeded(db, job_id)
    report = client.get(f"/v1/jobs/{job_id}/report").json()
    assert report["summary"] == SUMMARY and report["status"] == "succeeded"
    assert report["metrics"] == 3 and report["last_metrics"]["outer_step"] == 2
    assert set(report["plots"]) == {"meta_loss", "metrics", "loss_curves", "angles", "spectra"}
    for name in report["plots"]:
        response = client.get(f"/v1/jobs/{job_id}/plots/{name}.png")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(PNG) and len(response.content) > 5000
    assert (
        "available: meta_loss" in problem(client.get(f"/v1/jobs/{job_id}/plots/nonsense.png"), 404)["detail"]
    )


def test_report_of_a_queued_job_offers_what_exists(sqlite_client: TestClient, tiny: dict) -> None:
    job_id = sqlite_client.post("/v1/jobs", json=tiny).json()["id"]
    report = sqlite_client.get(f"/v1/jobs/{job_id}/report").json()
    assert (report["summary"], report["plots"], report["metrics"]) == (None, [], 0)
    problem(sqlite_client.get(f"/v1/jobs/{job_id}/plots/meta_loss.png"), 404)


def test_plots_ignore_odd_summaries(client: TestClient, submit: Submit, db: Session) -> None:
    job_id = submit()
    runs.claim_job(db, job_id=job_id, worker="w")
    odd = {"horizons": {"5": {"learned": {"loss_curve": [1.0, math.nan, 0.5]}, "x": 3}}, "analysis": 1}
    runs.finish_job(db, job_id=job_id, worker="w", summary=odd)
    assert client.get(f"/v1/jobs/{job_id}/report").json()["plots"] == ["loss_curves"]
    png = client.get(f"/v1/jobs/{job_id}/plots/loss_curves.png")
    assert png.status_code == 200 and png.content.startswith(PNG)
