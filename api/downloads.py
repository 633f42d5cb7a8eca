"""The learned feedback matrices, stored as safetensors, converted to npz or JSON without torch."""

from __future__ import annotations

import io
import json
import re
from typing import Any, Literal

import numpy as np
from safetensors.numpy import load

from store.runs import jsonable

Format = Literal["npz", "safetensors", "json"]

MEDIA_TYPES: dict[str, str] = {
    "npz": "application/octet-stream",
    "safetensors": "application/octet-stream",
    "json": "application/json",
}


def _layer_order(name: str) -> tuple[int, str]:
    digits = re.sub(r"\D", "", name)
    return (int(digits) if digits else 0, name)


def arrays(safetensors_bytes: bytes) -> dict[str, np.ndarray]:
    """Name -> array ("B2".."BL"), in layer order."""
    loaded = load(safetensors_bytes)
    return {name: loaded[name] for name in sorted(loaded, key=_layer_order)}


def convert(safetensors_bytes: bytes, format: Format) -> bytes:
    if format == "safetensors":
        return safetensors_bytes
    matrices = arrays(safetensors_bytes)
    if format == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, **matrices)  # type: ignore[arg-type]
        return buffer.getvalue()
    document: dict[str, Any] = {
        name: {"shape": list(a.shape), "dtype": str(a.dtype), "data": jsonable(a.tolist())}
        for name, a in matrices.items()
    }
    return json.dumps(document, allow_nan=False).encode()


def filename(job_name: str, job_id: object, format: Format) -> str:
    """A safe attachment name: "{job-name}-{id}.{format}"."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", job_name).strip("._") or "job"
    return f"{stem}-{job_id}.{format}"
