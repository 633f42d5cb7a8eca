"""optfb: learn the feedback matrices B of feedback alignment by differentiating unrolled training.

`import optfb` stays light (no torch) so that the API process can use the spec; the science
functions are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from optfb.spec import ExperimentSpec

# Public name -> module that defines it; imported lazily because those modules import torch.
_LAZY = {
    "feedback_gradients": "optfb.network",
    "unroll": "optfb.unrolled",
    "run_experiment": "optfb.meta",
    "Result": "optfb.meta",
    "Stopped": "optfb.errors",
    "NonFiniteError": "optfb.errors",
    "CheckpointMismatch": "optfb.errors",
    "evaluate": "optfb.evaluation",
}

__all__ = ["ExperimentSpec", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'optfb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
