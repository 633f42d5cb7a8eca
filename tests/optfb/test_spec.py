"""The spec refuses bad input with the field named, exports a schema, and stays free of torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from optfb.spec import ExperimentSpec, format_validation_error
from optfb.spec.presets import PRESETS, preset


def _error(obj) -> str:
    with pytest.raises(ValidationError) as exc:
        ExperimentSpec.model_validate(obj)
    return format_validation_error(exc.value)


def test_design_example_and_presets_validate():
    for name in PRESETS:
        assert preset(name).name == PRESETS[name]["name"]
    spec = preset("lillicrap-linear")
    assert spec.sizes == [30, 20, 10]
    assert spec.task.loss == "mse" and spec.horizons == [100, 1000]


@pytest.mark.parametrize(
    ("obj", "field", "reason"),
    [
        ({"inner": {"lr": -1}}, "inner.lr", "greater than 0"),
        ({"inner": {"lr": float("inf")}}, "inner.lr", "finite"),
        ({"inner": {"steps": 0}}, "inner.steps", "greater than or equal to 1"),
        ({"inner": {"optimizer": "rmsprop"}}, "inner.optimizer", "'sgd', 'momentum' or 'adam'"),
        ({"network": {"hidden": [0]}}, "network.hidden.0", "greater than or equal to 1"),
        ({"network": {"activation": "gelu"}}, "network.activation", "'linear'"),
        ({"outer": {"objective": "max"}}, "outer.objective", "'sum', 'mean' or 'final'"),
        ({"feedback": {"mode": "learned", "colour": 1}}, "feedback.colour", "Extra inputs"),
        ({"typo": 1}, "typo", "Extra inputs"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
        ({"task": {"kind": "digits", "input_dim": 30}}, "task", "task.input_dim is 30 but digits has 64"),
        ({"network": {"hidden": []}}, "spec", "network.hidden is empty"),
        ({"outer": {"checkpoint": 0}}, "outer.checkpoint", ""),
        ({"eval": {"horizons": []}}, "eval.horizons", "at least 1"),
        ({"inner": {"batch_size": "many"}}, "inner.batch_size", "valid integer"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(obj, field, reason):
    message = _error(obj)
    assert message.startswith(field) or f"; {field}" in message, message
    assert reason in message


def test_json_schema_export_names_the_fields():
    schema = ExperimentSpec.model_json_schema()
    text = json.dumps(schema)
    for name in ("inner", "outer", "feedback", "population", "learned_per_step", "checkpoint"):
        assert name in text


def test_importing_the_spec_does_not_import_torch():
    code = (
        "import sys, optfb, optfb.spec, optfb.spec.presets; optfb.ExperimentSpec(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_spec_too_large_for_one_worker_names_the_limit():
    message = _error({"network": {"hidden": [60000, 60000]}})
    assert "forward weights" in message and "over the limit of 268,435,456" in message
    message = _error(
        {"feedback": {"mode": "learned_per_step"}, "network": {"hidden": [4000]}, "inner": {"steps": 10000}}
    )
    assert "feedback matrices" in message
