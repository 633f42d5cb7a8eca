"""Helpers of the API tests: settings given in full, the broker's waiting messages, problem checks."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from store.config import Settings

PROBLEM_KEYS = {"type", "title", "status", "detail"}

MakeClient = Callable[..., TestClient]


def settings_for(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Settings given in full, so that OPTFB_* variables of the shell cannot leak in."""
    values: dict[str, Any] = {
        "mode": "local",
        "data_dir": data_dir,
        "database_url": database_url,
        "broker_url": None,
        "api_tokens": None,
        "max_spec_bytes": 65536,
        **overrides,
    }
    return Settings(**values)


def problem(response: Any, status: int) -> dict[str, Any]:
    """The body of a problem response, after checking its status and media type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert PROBLEM_KEYS <= set(body) and body["status"] == status
    return body


def broker_messages(data_dir: Path) -> list[tuple[str, list[Any]]]:
    """(task name, args) of every message waiting in the filesystem broker's folder."""
    out = []
    for path in sorted((data_dir / "broker" / "queue").glob("*.optfb.msg")):
        payload = json.loads(path.read_text())
        args = json.loads(base64.b64decode(payload["body"]))[0]
        out.append((payload["headers"]["task"], args))
    return out
