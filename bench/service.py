"""Service figures: submit -> running latency and status-poll throughput (written last)."""

from __future__ import annotations

from typing import Any


def run(quick: bool, required: bool = False) -> dict[str, Any]:
    return {"skipped": "not written yet"}
