"""POST /v1/jobs: validation with field paths, size limit, idempotency, enqueue after commit."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from store.jobs import get_job
from tests.api.helpers import MakeClient, broker_messages, problem

JOB_KEYS = {
    "id", "name", "status", "progress", "created_at", "started_at", "finished_at", "error",
    "summary", "spec",
}  # fmt: skip


def test_submit_answers_202_with_location_and_sends_one_message(
    client: TestClient, tiny: dict[str, Any], tmp_path: Path
) -> None:
    response = client.post("/v1/jobs", json=tiny)
    assert response.status_code == 202, response.text
    job = response.json()
    assert set(job) == JOB_KEYS
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["name"] == "tiny"
    assert job["progress"] == {"outer_step": 0, "outer_steps": 3, "fraction": 0.0, "eta_seconds": None}
    assert job["spec"]["inner"]["steps"] == 5 and job["spec"]["inner"]["optimizer"] == "sgd"
    assert broker_messages(tmp_path / "data") == [("optfb.run_job", [job["id"]])]
    assert client.get(response.headers["location"]).json()["id"] == job["id"]


def test_same_idempotency_key_and_body_gives_the_same_job(
    client: TestClient, tiny: dict[str, Any], tmp_path: Path
) -> None:
    headers = {"Idempotency-Key": "run-42"}
    first = client.post("/v1/jobs", json=tiny, headers=headers)
    # The same JSON with other key order and spacing is the same request.
    reordered = json.dumps(dict(reversed(list(tiny.items()))), indent=2)
    again = client.post(
        "/v1/jobs", content=reordered, headers={**headers, "Content-Type": "application/json"}
    )
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert len(client.get("/v1/jobs").json()["items"]) == 1
    assert len(broker_messages(tmp_path / "data")) == 1

    changed = client.post("/v1/jobs", json={**tiny, "seed": 7}, headers=headers)
    body = problem(changed, 422)
    assert "run-42" in body["detail"] and "different body" in body["detail"]
    other_key = client.post("/v1/jobs", json=tiny, headers={"Idempotency-Key": "run-43"})
    assert other_key.status_code == 202 and other_key.json()["id"] != first.json()["id"]


def test_malformed_json_is_a_400problem(sqlite_client: TestClient) -> None:
    response = sqlite_client.post(
        "/v1/jobs", content=b'{"name": "x",', headers={"Content-Type": "application/json"}
    )
    assert "not valid JSON" in problem(response, 400)["detail"]
    assert "empty" in problem(sqlite_client.post("/v1/jobs"), 400)["detail"]


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"inner": {"lr": 0}}, "inner.lr", "Input should be greater than 0"),
        ({"inner": {"lr": "fast"}}, "inner.lr", "Input should be a valid number"),
        ({"inner": {"lrate": 0.1}}, "inner.lrate", "Extra inputs are not permitted"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({"task": {"kind": "imagenet"}}, "task.kind", "Input should be"),
    ],
)
def test_an_invalid_spec_names_each_field_and_reason(
    sqlite_client: TestClient, change: dict[str, Any], field: str, reason: str
) -> None:
    response = sqlite_client.post("/v1/jobs", json={"name": "bad", **change})
    body = problem(response, 422)
    assert f"{field}: {reason}" in body["detail"]
    assert any(e["field"] == field and reason in e["message"] for e in body["errors"])


def test_every_bad_field_is_reported(sqlite_client: TestClient) -> None:
    response = sqlite_client.post("/v1/jobs", json={"inner": {"lr": -1, "steps": 0}})
    fields = {e["field"] for e in problem(response, 422)["errors"]}
    assert fields == {"inner.lr", "inner.steps"}


def test_an_oversized_spec_is_refused_naming_the_limit(
    make_client: MakeClient, sqlite_database_url: str, tiny: dict[str, Any]
) -> None:
    client = make_client(sqlite_database_url, max_spec_bytes=2048)
    big = {**tiny, "name": "x" * 100, "network": {"hidden": [5] * 1500}}
    body = problem(client.post("/v1/jobs", json=big), 413)
    assert "2048 bytes" in body["detail"]
    # Without a Content-Length (chunked upload) the limit holds as well.
    chunks = (json.dumps(big)[i : i + 500].encode() for i in range(0, 8000, 500))
    response = client.post("/v1/jobs", content=chunks, headers={"Content-Type": "application/json"})
    assert "2048 bytes" in problem(response, 413)["detail"]
    assert client.get("/v1/jobs").json()["items"] == []


def test_job_is_accepted_when_the_broker_is_down_and_left_for_the_sweep(
    make_client: MakeClient, sqlite_database_url: str, tiny: dict[str, Any]
) -> None:
    client = make_client(sqlite_database_url, broker_url="redis://127.0.0.1:1/0")
    response = client.post("/v1/jobs", json=tiny)
    assert response.status_code == 202
    from store.db import session_scope

    with session_scope(sqlite_database_url) as session:
        job = get_job(session, job_id=response.json()["id"])
        assert job is not None and job.status == "queued" and job.enqueued_at is None


@pytest.mark.redis
def test_enqueue_through_redis(
    make_client: MakeClient, sqlite_database_url: str, redis_url: str, tiny: dict[str, Any]
) -> None:
    import redis

    url = redis_url.rsplit("/", 1)[0] + "/14"  # a database of its own: other tests use the queue
    server = redis.Redis.from_url(url)
    server.delete("optfb")
    try:
        client = make_client(sqlite_database_url, broker_url=url)
        job_id = client.post("/v1/jobs", json=tiny).json()["id"]
        assert server.llen("optfb") == 1
        raw = server.lindex("optfb", 0)
        assert raw is not None
        message = json.loads(raw)
        assert message["headers"]["task"] == "optfb.run_job"
        assert message["headers"]["id"] and job_id in message["headers"]["argsrepr"]
        assert uuid.UUID(job_id)
    finally:
        server.delete("optfb")
        server.close()
