"""The local CLI end to end on a tiny spec: run, eval with the saved B, presets, and bad input."""

from __future__ import annotations

import json

import numpy as np
from safetensors.numpy import load_file

from optfb.cli import main
from optfb.spec.presets import PRESETS


def test_run_writes_the_four_files_then_eval_reads_them(tmp_path, capsys):
    spec = {**PRESETS["tiny"], "outer": {"steps": 4, "lr": 0.01}}
    path = tmp_path / "spec.yaml"
    import yaml

    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "4/4" in captured.err  # the progress bar
    assert {p.name for p in out.iterdir()} == {
        "feedback.safetensors",
        "feedback.npz",
        "metrics.jsonl",
        "summary.json",
    }
    b = load_file(str(out / "feedback.safetensors"))["B2"]
    assert b.shape == (5, 3) and np.isfinite(b).all()
    np.testing.assert_array_equal(np.load(out / "feedback.npz")["B2"], b)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["outer_step"] for r in rows] == [1, 2, 3, 4]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["spec"]["name"] == "tiny" and "learned" in summary["horizons"]["5"]

    assert main(["eval", str(path), "--feedback", str(out / "feedback.npz"), "--steps", "30", "--curve"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert len(stats["loss_curve"]) == 30 and stats["steps"] == 30


def test_presets_and_schema(capsys):
    assert main(["presets"]) == 0
    assert "lillicrap-linear" in capsys.readouterr().out
    assert main(["presets", "tiny"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "tiny"
    assert main(["schema"]) == 0
    assert "properties" in json.loads(capsys.readouterr().out)


def test_invalid_spec_exits_2_naming_the_field(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"inner": {"lr": 0}}))
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "inner.lr" in capsys.readouterr().err
    assert main(["eval", "tiny", "--feedback", str(tmp_path / "missing.npz"), "--steps", "3"]) == 2
    assert "missing.npz" in capsys.readouterr().err


def test_run_reports_a_diverged_horizon_as_null(tmp_path, capsys):
    spec = {
        **PRESETS["tiny"],
        "feedback": {"mode": "random"},
        "dtype": "float32",
        "network": {"hidden": [5], "activation": "linear"},
        "inner": {"steps": 5, "batch_size": 8, "lr": 3.0},
        "eval": {"horizons": [300], "seeds": 2, "analysis_points": 2},
    }
    path = tmp_path / "diverging.json"
    path.write_text(json.dumps(spec))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["mean_loss"]["300"]["random"] is None


def test_run_steps_override_is_validated(tmp_path, capsys):
    assert main(["run", "tiny", "--out", str(tmp_path / "o"), "--steps", "-3"]) == 2
    assert "outer.steps" in capsys.readouterr().err
