"""Where and in what precision a spec runs: device "auto" means CUDA when present."""

from __future__ import annotations

import torch

from optfb.spec import ExperimentSpec


def resolve(spec: ExperimentSpec) -> tuple[torch.device, torch.dtype]:
    if spec.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("spec.device is 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    name = "cuda" if spec.device == "cuda" or (spec.device == "auto" and torch.cuda.is_available()) else "cpu"
    return torch.device(name), getattr(torch, spec.dtype)
