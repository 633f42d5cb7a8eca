"""The benchmark: its baseline computes optfb's mathematics, and a quick run writes its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import optfb
from bench import baseline
from bench.__main__ import parse_args, selection
from bench.configs import CONFIGS, Config, LazyBatches, make_problem
from optfb.unrolled import meta_gradient

ROOT = Path(__file__).resolve().parent.parent

SMALL = [
    Config("lin", (5, 4, 3), "linear", "mse", steps=6, batch=7, lr=0.1),
    Config("tanh", (6, 5, 4, 3), "tanh", "cross_entropy", steps=5, batch=8, lr=0.3),
    Config("sig", (6, 7, 3), "sigmoid", "cross_entropy", steps=4, batch=5, lr=0.5),
    Config("tanh-mse", (4, 6, 5, 2), "tanh", "mse", steps=5, batch=3, lr=0.2),
]


@pytest.mark.parametrize("cfg", SMALL, ids=lambda c: c.name)
def test_baseline_equals_unroll_in_float64(cfg: Config) -> None:
    p = make_problem(cfg, torch.device("cpu"), torch.float64, seed=3)
    meta, _, _ = optfb.unroll(p.params, p.feedback, p.batches, "sgd", cfg.lr, cfg.activation, cfg.loss)
    want = torch.autograd.grad(meta, p.feedback)
    got_meta, costs = baseline.unroll(
        p.weights, p.biases, p.feedback, p.batches, cfg.lr, cfg.activation, cfg.loss
    )
    got = torch.autograd.grad(got_meta, p.feedback)
    assert len(costs) == cfg.steps
    assert abs(got_meta.item() - meta.item()) <= 1e-10
    for g, w in zip(got, want, strict=True):
        assert w.abs().max() > 1e-6  # a meta-gradient that is not trivially zero
        assert (g - w).abs().max().item() <= 1e-10


def test_lazy_batches_are_deterministic_and_recompute_exactly() -> None:
    cfg = SMALL[1]
    lazy = LazyBatches(cfg, 9, torch.device("cpu"), torch.float64, seed=5)
    assert len(lazy) == 9
    assert torch.equal(lazy[4][0], lazy[4][0]) and torch.equal(lazy[4][1], lazy[4][1])
    assert not torch.equal(lazy[4][0], lazy[5][0])
    assert lazy[0][1].dtype == torch.long and lazy[0][1].shape == (cfg.batch,)
    with pytest.raises(IndexError):
        lazy[9]
    p = make_problem(cfg, torch.device("cpu"), torch.float64, steps=9, lazy=True)
    grads = {}
    for mode in (None, "sqrt"):
        meta, _, _ = optfb.unroll(
            p.params, p.feedback, p.batches, "sgd", cfg.lr, cfg.activation, cfg.loss, checkpoint=mode
        )
        grads[mode] = meta_gradient(meta, p.feedback)
    for a, b in zip(grads[None], grads["sqrt"], strict=True):
        assert (a - b).abs().max().item() <= 1e-12


def test_population_problem_has_a_leading_member_axis() -> None:
    cfg = CONFIGS["S"]
    p = make_problem(cfg, torch.device("cpu"), members=3, steps=2)
    assert p.weights[0].shape == (3, 20, 30) and p.feedback[0].shape == (3, 20, 10)
    assert p.batches[0][0].shape == (3, 32, 30) and p.batches[0][1].shape == (3, 32, 10)


def test_only_selects_sections_and_what_they_imply() -> None:
    assert selection(parse_args(["--only", "S"])) == {"S", "population"}
    assert selection(parse_args(["--only", "M,service"])) == {"M", "long", "service"}
    assert selection(parse_args(["--only", "L", "--service"])) == {"L", "service"}
    assert selection(parse_args(["--service"])) == {"service"}
    assert selection(parse_args([])) == {"S", "M", "L", "population", "long", "service"}
    with pytest.raises(SystemExit):
        selection(parse_args(["--only", "XL"]))


@pytest.mark.slow
def test_quick_run_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "S", "--out", str(out)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - began
    assert done.returncode == 0, done.stderr[-2000:]
    assert elapsed < 60, f"the quick run took {elapsed:.0f} s"
    assert f"results written to {out}" in done.stdout
    assert "time <= 0.8:" in done.stdout and "target >= 10x:" in done.stdout
    r = json.loads(out.read_text())
    assert {"timestamp", "device", "device_name", "threads", "matmul_peak", "repeats"} <= set(r["meta"])
    assert r["meta"]["quick"] is True and r["meta"]["matmul_peak"]["flop_per_s"] > 0
    s = r["configs"]["S"]
    for side in ("optfb", "baseline"):
        assert {
            "seconds_per_outer_step",
            "inner_steps_per_s",
            "flops_per_outer_step",
            "flop_per_s",
            "peak_fraction",
            "peak_memory_bytes",
        } <= set(s[side])
        assert s[side]["flops_per_outer_step"] > 0 and s[side]["peak_memory_bytes"] is not None
    assert {"time", "inner_steps_per_s", "flop_per_s", "peak_memory"} <= set(s["ratios"])
    assert set(s["targets"]["time_ratio"]) == {"le", "pass"}
    assert s["agreement"]["gradient_rel_diff"] < 1e-3
    p = r["population"]
    assert p["members"] == 64 and p["throughput_ratio"] > 0 and "pass" in p["target"]
    assert "long_horizon" not in r and "M" not in r["configs"]


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_service_section_measures_latency_and_polling(
    postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "service.json"
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        OPTFB_BENCH_POSTGRES_URL=postgres_url,
        OPTFB_BENCH_REDIS_URL=redis_url.rsplit("/", 1)[0] + "/15",
    )
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--service", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    s = json.loads(out.read_text())["service"]
    assert "error" not in s and "skipped" not in s, s
    assert s["statuses"] == ["succeeded"] and s["latency"]["jobs"] == 3
    assert 0 < s["latency"]["median_s"] <= s["latency"]["p90_s"] <= s["latency"]["max_s"]
    assert set(s["polling"]) == {"1 client", "4 threads"}
    assert all(p["requests"] > 0 and p["errors"] == 0 for p in s["polling"].values())
    assert "configs" not in json.loads(out.read_text())
