"""Ready-made experiment specs (plain dicts, validated on use) for the CLI and GET /v1/presets."""

from __future__ import annotations

from typing import Any

from optfb.spec import ExperimentSpec

PRESETS: dict[str, dict[str, Any]] = {
    # Lillicrap et al. 2016, Fig. 2: a 30-20-10 linear network learning a linear teacher.
    "lillicrap-linear": {
        "name": "lillicrap-linear",
        "seed": 0,
        "task": {"kind": "linear_teacher", "input_dim": 30, "output_dim": 10},
        "network": {"hidden": [20], "activation": "linear"},
        "feedback": {"mode": "learned", "init": "uniform", "scale": 0.5},
        "inner": {"optimizer": "sgd", "lr": 0.01, "steps": 100, "batch_size": 32},
        "outer": {"optimizer": "adam", "lr": 0.001, "steps": 200, "objective": "sum"},
        "eval": {"horizons": [100, 1000], "seeds": 5},
    },
    # Question 2: one B per inner step.
    "lillicrap-linear-per-step": {
        "name": "lillicrap-linear-per-step",
        "task": {"kind": "linear_teacher"},
        "network": {"hidden": [20], "activation": "linear"},
        "feedback": {"mode": "learned_per_step", "scale": 0.5},
        "inner": {"optimizer": "sgd", "lr": 0.01, "steps": 50, "batch_size": 32},
        "outer": {"lr": 0.002, "steps": 200},
        "eval": {"horizons": [50, 500], "seeds": 5},
    },
    # A nonlinear student of a nonlinear teacher, trained with momentum.
    "nonlinear-teacher": {
        "name": "nonlinear-teacher",
        "task": {"kind": "nonlinear_teacher", "input_dim": 30, "output_dim": 10},
        "network": {"hidden": [40], "activation": "tanh", "init": "xavier"},
        "feedback": {"mode": "learned", "scale": 0.5, "fan_in": True},
        "inner": {"optimizer": "momentum", "lr": 0.02, "steps": 100, "batch_size": 32},
        "outer": {"lr": 0.003, "steps": 200},
        "eval": {"horizons": [100, 1000], "seeds": 5},
    },
    # Question 3 on real data: the 8x8 digits, Adam inner loop, held-out objective.
    "digits-adam": {
        "name": "digits-adam",
        "task": {"kind": "digits"},
        "network": {"hidden": [64], "activation": "tanh", "init": "xavier"},
        "feedback": {"mode": "learned", "scale": 0.2},
        "inner": {"optimizer": "adam", "lr": 0.003, "steps": 50, "batch_size": 64},
        "outer": {"lr": 0.003, "steps": 100, "objective": "final"},
        "eval": {"horizons": [50, 500], "seeds": 5},
    },
    # Seconds on a laptop CPU: smoke tests and first contact with the service.
    "tiny": {
        "name": "tiny",
        "task": {"kind": "linear_teacher", "input_dim": 6, "output_dim": 3},
        "network": {"hidden": [5], "activation": "tanh"},
        "feedback": {"mode": "learned"},
        "inner": {"steps": 5, "batch_size": 8, "lr": 0.05},
        "outer": {"steps": 3, "lr": 0.01},
        "eval": {"horizons": [5, 20], "seeds": 2, "analysis_points": 3},
        "device": "cpu",
    },
}


def preset(name: str) -> ExperimentSpec:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    return ExperimentSpec.model_validate(PRESETS[name])
