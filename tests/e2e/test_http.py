"""End to end over HTTP: `python -m worker.local` serving the API with a real worker behind it."""

from __future__ import annotations

import io
import json
import uuid

import numpy as np
import pytest
from safetensors.numpy import load

from optfb.spec.presets import PRESETS
from tests.e2e.server import Server, server

__all__ = ["server"]  # the module-scoped fixture

pytestmark = pytest.mark.slow

PROBLEM = "application/problem+json"


def test_submit_poll_download(server: Server) -> None:
    with server.client() as client:
        submitted = client.post("/v1/jobs", json=PRESETS["tiny"])
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        assert submitted.headers["location"] == f"/v1/jobs/{job_id}"

        job = server.wait_job(client, job_id)
        assert job["status"] == "succeeded", (job["error"], server.output())
        steps = PRESETS["tiny"]["outer"]["steps"]
        assert job["progress"]["outer_step"] == job["progress"]["outer_steps"] == steps
        assert job["summary"]["meta_loss"]

        rows = client.get(f"/v1/jobs/{job_id}/metrics").json()["rows"]
        assert [row["outer_step"] for row in rows] == list(range(1, steps + 1))
        assert all(np.isfinite(row["meta_loss"]) for row in rows)

        downloads = {}
        for fmt in ("npz", "safetensors", "json"):
            response = client.get(f"/v1/jobs/{job_id}/feedback", params={"format": fmt})
            assert response.status_code == 200, response.text
            downloads[fmt] = response.content
    with np.load(io.BytesIO(downloads["npz"])) as npz:
        from_npz = {name: npz[name] for name in npz.files}
    from_safetensors = load(downloads["safetensors"])
    from_json = {k: np.asarray(v["data"]) for k, v in json.loads(downloads["json"]).items()}
    for matrices in (from_npz, from_safetensors, from_json):
        assert set(matrices) == {"B2"}
        assert matrices["B2"].shape == (5, 3)  # (d_1, d_2): the shape of W_2^T
        assert np.isfinite(matrices["B2"]).all()
        np.testing.assert_allclose(matrices["B2"], from_safetensors["B2"], rtol=1e-6)


def _problem(response: object) -> dict[str, object]:
    assert response.headers["content-type"].startswith(PROBLEM)  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["detail"]
    return body


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        (b'{"name": "x", ', 400, "JSON"),
        (json.dumps({**PRESETS["tiny"], "colour": "red"}).encode(), 422, "colour"),
        (json.dumps({**PRESETS["tiny"], "outer": {"steps": "many"}}).encode(), 422, "outer.steps"),
        (json.dumps({**PRESETS["tiny"], "network": {"hidden": [0]}}).encode(), 422, "hidden"),
    ],
    ids=["malformed-json", "unknown-field", "wrong-type", "out-of-range"],
)
def test_bad_specs_are_refused_with_the_reason(server: Server, body: bytes, status: int, names: str) -> None:
    with server.client() as client:
        before = len(client.get("/v1/jobs").json()["items"])
        response = client.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == status, response.text
        assert names in str(_problem(response)["detail"])
        assert len(client.get("/v1/jobs").json()["items"]) == before  # nothing was queued


def test_unknown_job_is_404(server: Server) -> None:
    with server.client() as client:
        unknown = uuid.uuid4()
        for path in (f"/v1/jobs/{unknown}", "/v1/jobs/not-a-job", f"/v1/jobs/{unknown}/feedback"):
            response = client.get(path)
            assert response.status_code == 404, path
            _problem(response)


def test_download_before_the_job_succeeded_is_409(server: Server) -> None:
    long = {**PRESETS["tiny"], "outer": {"steps": 100_000}}
    with server.client() as client:
        job_id = client.post("/v1/jobs", json=long).json()["id"]
        try:
            response = client.get(f"/v1/jobs/{job_id}/feedback")
            assert response.status_code == 409
            assert "succeeded" in str(_problem(response)["detail"])
        finally:
            client.post(f"/v1/jobs/{job_id}/cancel")
        assert server.wait_job(client, job_id)["status"] == "cancelled"
