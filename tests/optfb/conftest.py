"""The tiny experiment spec shared by the library tests: seconds on a CPU."""

from __future__ import annotations

import pytest

from optfb.spec import ExperimentSpec


@pytest.fixture
def tiny_spec() -> ExperimentSpec:
    return ExperimentSpec.model_validate(
        {
            "name": "test-tiny",
            "task": {"kind": "linear_teacher", "input_dim": 6, "output_dim": 3},
            "network": {"hidden": [5], "activation": "tanh", "init": "xavier"},
            "feedback": {"mode": "learned"},
            "inner": {"steps": 5, "batch_size": 8, "lr": 0.05},
            "outer": {"steps": 6, "lr": 0.01},
            "eval": {"horizons": [5, 12], "seeds": 2, "analysis_points": 3},
            "device": "cpu",
            "dtype": "float64",
        }
    )
