"""Schema, presets, docs, liveness and readiness, and an API process that never imports torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from optfb.spec import ExperimentSpec
from optfb.spec.presets import PRESETS
from tests.api.helpers import MakeClient, problem

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_app_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys, api.app\n"
        "from fastapi.testclient import TestClient\n"
        "with TestClient(api.app.app) as client:\n"
        "    assert client.get('/v1/spec/schema').status_code == 200\n"
        "    assert client.post('/v1/jobs', json={'name': 'x', 'inner': {'lr': 0}}).status_code == 422\n"
        "print('torch' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTFB_")}
    env |= {"PYTHONPATH": str(REPO), "OPTFB_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_spec_schema_presets_and_docs(sqlite_client: TestClient) -> None:
    schema = sqlite_client.get("/v1/spec/schema").json()
    assert schema == ExperimentSpec.model_json_schema()
    presets = sqlite_client.get("/v1/presets").json()
    assert presets == PRESETS
    for spec in presets.values():
        ExperimentSpec.model_validate(spec)
    assert sqlite_client.get("/docs").status_code == 200
    openapi = sqlite_client.get("/openapi.json").json()
    body = openapi["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ExperimentSpec"}
    assert {"ExperimentSpec", "InnerSpec"} <= set(openapi["components"]["schemas"])


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_is_503_naming_an_unreachable_broker(
    make_client: MakeClient, sqlite_database_url: str
) -> None:
    client = make_client(sqlite_database_url, broker_url="redis://127.0.0.1:1/0")
    body = problem(client.get("/readyz"), 503)
    assert body["checks"] == {"database": "ok", "broker": body["checks"]["broker"]}
    assert body["detail"].startswith("broker: unreachable at redis://127.0.0.1:1/0")
    assert client.get("/healthz").status_code == 200  # alive, just not ready


def test_unmigrated_database_is_a_clear_503(make_client: MakeClient, tmp_path: Path) -> None:
    client = make_client(f"sqlite:///{tmp_path / 'empty.db'}")
    body = problem(client.get("/readyz"), 503)
    assert "database: not migrated" in body["detail"]
    body = problem(client.get("/v1/jobs"), 503)
    assert "python -m store.db" in body["detail"]


def test_unknown_route_is_a_problem(sqlite_client: TestClient) -> None:
    problem(sqlite_client.get("/v2/jobs"), 404)
    problem(sqlite_client.delete("/v1/jobs"), 405)
