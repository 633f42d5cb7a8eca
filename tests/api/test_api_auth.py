"""Production mode: bearer tokens map to owners, and each owner sees only their own jobs."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.helpers import MakeClient, problem, settings_for

TOKENS = "alice-token:alice,bob-token:bob"


@pytest.fixture
def prod(make_client: MakeClient, database_url: str) -> TestClient:
    return make_client(database_url, mode="production", api_tokens=TOKENS)


def _as(who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {who}-token"}


def test_requests_need_a_valid_bearer_token(prod: TestClient, tiny: dict[str, Any]) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic YTpi"}):
        body = problem(prod.post("/v1/jobs", json=tiny, headers=headers), 401)
        assert "Bearer" in prod.get("/v1/jobs", headers=headers).headers["www-authenticate"]
        assert body["type"].endswith("unauthorized")
    # Authentication comes before the body is read: no validation details for a stranger.
    problem(prod.post("/v1/jobs", json={"inner": {"lr": -1}}), 401)
    problem(prod.post("/v1/jobs", content=b"x" * 200_000, headers={"Content-Type": "application/json"}), 401)
    # Liveness and the spec's schema need no token.
    assert prod.get("/healthz").status_code == 200
    assert prod.get("/v1/spec/schema").status_code == 200


def test_jobs_are_visible_only_to_their_owner(prod: TestClient, tiny: dict[str, Any]) -> None:
    job_id = prod.post("/v1/jobs", json=tiny, headers=_as("alice")).json()["id"]
    assert [j["id"] for j in prod.get("/v1/jobs", headers=_as("alice")).json()["items"]] == [job_id]
    assert prod.get("/v1/jobs", headers=_as("bob")).json()["items"] == []
    for path in ("", "/metrics", "/report", "/feedback"):
        problem(prod.get(f"/v1/jobs/{job_id}{path}", headers=_as("bob")), 404)
    problem(prod.post(f"/v1/jobs/{job_id}/cancel", headers=_as("bob")), 404)
    assert prod.get(f"/v1/jobs/{job_id}", headers=_as("alice")).json()["status"] == "queued"
    # The same Idempotency-Key of two owners makes two jobs.
    key = {"Idempotency-Key": "same"}
    a = prod.post("/v1/jobs", json=tiny, headers={**_as("alice"), **key}).json()["id"]
    b = prod.post("/v1/jobs", json=tiny, headers={**_as("bob"), **key}).json()["id"]
    assert a != b


def test_production_without_tokens_refuses_to_start(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="OPTFB_API_TOKENS is required"):
        create_app(settings_for("sqlite://", tmp_path, mode="production"))
