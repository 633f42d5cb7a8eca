"""Files a result is saved as: feedback.safetensors, feedback.npz, metrics.jsonl, summary.json."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save as _save_numpy


def feedback_arrays(feedback: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Contiguous numpy arrays named B2..BL from tensors or arrays."""
    out = {}
    for name, value in feedback.items():
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        out[name] = np.ascontiguousarray(array)
    return out


def safetensors_bytes(feedback: Mapping[str, Any], metadata: dict[str, str] | None = None) -> bytes:
    return _save_numpy(feedback_arrays(feedback), metadata=metadata)


def npz_bytes(feedback: Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **feedback_arrays(feedback))  # type: ignore[arg-type]
    return buffer.getvalue()


def load_feedback(path: Path) -> dict[str, np.ndarray]:
    """B2..BL from a .safetensors, .npz or .json file (the formats the CLI and the API write)."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))
    if path.suffix == ".npz":
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    if path.suffix == ".json":
        raw = json.loads(path.read_text())
        return {name: np.asarray(v["data"] if isinstance(v, dict) else v) for name, v in raw.items()}
    raise ValueError(f"{path}: feedback files are .safetensors, .npz or .json")


def save_result(result: Any, folder: Path | str) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"spec": result.spec.model_dump_json()}
    (folder / "feedback.safetensors").write_bytes(safetensors_bytes(result.feedback, meta))
    (folder / "feedback.npz").write_bytes(npz_bytes(result.feedback))
    with open(folder / "metrics.jsonl", "w") as out:
        for row in result.metrics:
            out.write(json.dumps(row) + "\n")
    summary = {"spec": result.spec.model_dump(mode="json"), **result.summary}
    (folder / "summary.json").write_text(json.dumps(summary, indent=1))
    return folder
