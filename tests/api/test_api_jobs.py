"""GET /v1/jobs (list, filter, cursor pages), GET /v1/jobs/{id} (shape, progress, ETA), cancel."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from store import runs
from store.models import Job, utcnow
from tests.api.helpers import problem

Submit = Callable[..., uuid.UUID]


def test_list_is_newest_first_with_cursor_pages(client: TestClient, submit: Submit) -> None:
    ids = [submit(name=f"job-{i}") for i in range(5)]
    first = client.get("/v1/jobs", params={"limit": 2}).json()
    assert set(first) == {"items", "next_cursor"}
    seen = [item["id"] for item in first["items"]]
    cursor = first["next_cursor"]
    while cursor is not None:
        page = client.get("/v1/jobs", params={"limit": 2, "cursor": cursor}).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
    assert seen == [str(i) for i in reversed(ids)]
    everything = client.get("/v1/jobs").json()
    assert len(everything["items"]) == 5 and everything["next_cursor"] is None


def test_list_filters_by_status(client: TestClient, submit: Submit, db: Session) -> None:
    running, queued = submit(), submit()
    assert runs.claim_job(db, job_id=running, worker="w")
    by_status = {
        status: [item["id"] for item in client.get(f"/v1/jobs?status={status}").json()["items"]]
        for status in ("running", "queued", "failed")
    }
    assert by_status == {"running": [str(running)], "queued": [str(queued)], "failed": []}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=finished", "query.status"),
        ("limit=0", "query.limit"),
        ("limit=1000", "query.limit"),
        ("limit=many", "query.limit"),
        ("cursor=not-a-cursor", "query.cursor"),
    ],
)
def test_bad_list_parameters_are_422_problems(sqlite_client: TestClient, query: str, field: str) -> None:
    body = problem(sqlite_client.get(f"/v1/jobs?{query}"), 422)
    assert [e["field"] for e in body["errors"]] == [field]
    assert field in body["detail"]


def test_detail_shows_progress_and_eta(client: TestClient, submit: Submit, db: Session) -> None:
    job_id = submit()
    assert runs.claim_job(db, job_id=job_id, worker="w")
    assert runs.heartbeat(db, job_id=job_id, worker="w", outer_step=1, outer_steps=4)
    db.execute(update(Job).where(Job.id == job_id).values(started_at=utcnow() - timedelta(seconds=30)))
    db.commit()
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "running" and job["started_at"] is not None
    progress = job["progress"]
    assert (progress["outer_step"], progress["outer_steps"], progress["fraction"]) == (1, 4, 0.25)
    assert 85 <= progress["eta_seconds"] <= 100  # 30 s for a quarter: about 90 s to go

    assert runs.finish_job(db, job_id=job_id, worker="w", summary={"horizons": {}})
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["summary"] == {"horizons": {}}
    assert job["progress"]["fraction"] == 1.0 and job["progress"]["eta_seconds"] == 0.0
    assert job["finished_at"] is not None


def test_failed_job_shows_its_error(client: TestClient, submit: Submit, db: Session) -> None:
    job_id = submit()
    runs.claim_job(db, job_id=job_id, worker="w")
    runs.fail_job(db, job_id=job_id, worker="w", error="NonFiniteError: meta-loss is nan")
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["error"]) == ("failed", "NonFiniteError: meta-loss is nan")


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_unknown_job_is_a_404_problem(sqlite_client: TestClient, job_id: str) -> None:
    for path in ("", "/metrics", "/feedback", "/report", "/plots/meta_loss.png"):
        assert job_id in problem(sqlite_client.get(f"/v1/jobs/{job_id}{path}"), 404)["detail"]
    problem(sqlite_client.post(f"/v1/jobs/{job_id}/cancel"), 404)


def test_cancel_is_idempotent(client: TestClient, submit: Submit, db: Session) -> None:
    queued, running = submit(), submit()
    runs.claim_job(db, job_id=running, worker="w")
    for _ in range(2):
        response = client.post(f"/v1/jobs/{queued}/cancel")
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        assert response.json()["finished_at"] is not None
        assert client.post(f"/v1/jobs/{running}/cancel").json()["status"] == "running"
    assert runs.is_cancel_requested(db, job_id=running)
    assert runs.mark_cancelled(db, job_id=running, worker="w")
    assert client.post(f"/v1/jobs/{running}/cancel").json()["status"] == "cancelled"
